// The original TF.js graph of the person detector on one input tensor: its six raw outputs, for
// tests/data/person_detector_reference.npz (made by scripts/detector_reference.sh, which installs @tensorflow/tfjs).
//   node scripts/detector_reference.mjs MODEL_JSON INPUT_F32 SIDE OUT_F32
// INPUT_F32: float32 NCHW (1, 3, SIDE, SIDE), already in the graph's own normalisation. OUT_F32: the outputs
// Identity .. Identity_5 one after another, float32; their shapes are printed as JSON.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";

const [modelPath, inputPath, sideText, outPath] = process.argv.slice(2);
const side = Number(sideText);
const spec = JSON.parse(readFileSync(modelPath, "utf8"));
const [group] = spec.weightsManifest;
const weightData = new Uint8Array(Buffer.concat(group.paths.map((p) => readFileSync(join(dirname(modelPath), p))))).buffer;
const model = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: spec.modelTopology, weightSpecs: group.weights, weightData }));
const bytes = readFileSync(inputPath);
const input = tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, 3 * side * side), [1, 3, side, side]);
const names = ["Identity", "Identity_1", "Identity_2", "Identity_3", "Identity_4", "Identity_5"];
const outputs = await model.executeAsync(input, names.map((n) => `${n}:0`));
const shapes = [];
const parts = [];
for (const tensor of outputs) {
  shapes.push(tensor.shape);
  parts.push(Buffer.from((await tensor.data()).buffer));
}
writeFileSync(outPath, Buffer.concat(parts));
console.log(JSON.stringify({ backend: tf.getBackend(), tfjs: tf.version.tfjs, shapes }));
