// Runs an original TF.js graph model on one input tensor and writes the outputs named, for the checks of our
// PyTorch rebuilds (scripts/detector_reference.sh, scripts/teacher_reference.sh; they install @tensorflow/tfjs).
//   node scripts/tfjs_run.mjs MODEL_JSON INPUT DTYPE SHAPE OUTPUTS OUT_F32
// INPUT: the raw tensor (DTYPE float32 or int32, SHAPE comma-separated, in the graph's own layout and
// normalisation). OUTPUTS: comma-separated node names. OUT_F32: the outputs one after another as float32; their
// shapes, the TF.js version and its backend are printed as JSON.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";

const [modelPath, inputPath, dtype, shapeText, outputText, outPath] = process.argv.slice(2);
const shape = shapeText.split(",").map(Number);
const spec = JSON.parse(readFileSync(modelPath, "utf8"));
const [group] = spec.weightsManifest;
const weightData = new Uint8Array(Buffer.concat(group.paths.map((p) => readFileSync(join(dirname(modelPath), p))))).buffer;
const model = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: spec.modelTopology, weightSpecs: group.weights, weightData }));
const bytes = readFileSync(inputPath);
const count = shape.reduce((a, b) => a * b, 1);
const values = dtype === "int32" ? new Int32Array(bytes.buffer, bytes.byteOffset, count) : new Float32Array(bytes.buffer, bytes.byteOffset, count);
const input = tf.tensor(values, shape, dtype);
const names = outputText.split(",");
const result = await model.executeAsync(input, names.map((n) => `${n}:0`));
const outputs = Array.isArray(result) ? result : [result];
const shapes = [];
const parts = [];
for (const tensor of outputs) {
  shapes.push(tensor.shape);
  parts.push(Buffer.from(new Float32Array(await tensor.data()).buffer));
}
writeFileSync(outPath, Buffer.concat(parts));
console.log(JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version.tfjs, shapes }));
