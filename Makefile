# hourglass-serve: set-up, serving, tests, benchmarks and images. `make help` lists the targets.
#
# The virtualenv is built from the lock files in requirements/ (regenerate them with `make lock`). Stamp files in
# .venv record what is installed, so every target is a no-op when no lock file changed since the last run.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PIP_VERSION := 26.3
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
CHROMIUM ?= /usr/bin/chromium
IMAGE ?= hourglass-serve
# a Docker client that builds with BuildKit (the GPU Dockerfile picks its weights stage by argument)
DOCKER ?= docker
# the bases, when set (scripts/docker_base.sh makes local ones where Docker Hub cannot be reached)
BASE_ARGS = $(if $(PYTHON_IMAGE),--build-arg PYTHON_IMAGE=$(PYTHON_IMAGE)) $(if $(BUILD_IMAGE),--build-arg BUILD_IMAGE=$(BUILD_IMAGE))
MODEL ?= default.onnx

REQ := requirements
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SERVE_STAMP := $(VENV)/.stamp-serve
INSTALL_STAMP := $(VENV)/.stamp-install
COMPOSE_VENV := $(VENV)/compose
COMPOSE_STAMP := $(COMPOSE_VENV)/.stamp
TORCH_PIN = $(shell grep -m1 '^torch==' $(REQ)/train.txt)

.PHONY: help install serve test lint bench browser mpii-weights docker-build docker-build-cpu docker-build-mpii8 docker-base \
	docker-test lock \
	clean distclean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"error: hourglass-serve needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0] + "; use make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q pip==$(PIP_VERSION)

# Serving set only, plus a .pth file that puts the repository on the venv's path (relative, so it survives a move).
$(SERVE_STAMP): $(REQ)/serve.txt | $(PY)
	$(PIP) install -q -r $(REQ)/serve.txt
	$(PY) -c 'import os, pathlib, sysconfig; site = sysconfig.get_path("purelib"); \
		pathlib.Path(site, "hourglass_serve.pth").write_text(os.path.relpath("$(CURDIR)", site) + "\n")'
	touch $@

# docker-compose v1 pins jsonschema<4 and PyYAML<6, so it lives in a venv of its own (used by tests/test_packaging.py).
$(COMPOSE_STAMP): $(REQ)/compose.txt $(REQ)/compose-build.txt | $(PY)
	$(PYTHON) -m venv $(COMPOSE_VENV)
	$(COMPOSE_VENV)/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(COMPOSE_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		--build-constraint $(REQ)/compose-build.txt -r $(REQ)/compose.txt
	touch $@

# torch's CPU build is not on PyPI: take it from a configured local wheel/mirror if there is one, else PyTorch's index.
$(INSTALL_STAMP): $(SERVE_STAMP) $(COMPOSE_STAMP) $(REQ)/train.txt $(REQ)/dev.txt
	$(PIP) install -q --no-deps $(TORCH_PIN) 2>/dev/null || $(PIP) install -q --no-deps --index-url $(TORCH_INDEX) $(TORCH_PIN)
	$(PIP) install -q -r $(REQ)/train.txt -r $(REQ)/dev.txt
	touch $@

install: $(INSTALL_STAMP) ## create .venv with everything: serving, training, tests (idempotent)

serve: $(SERVE_STAMP) ## serve weights/default.onnx on http://localhost:8000 (POSE_* variables configure it)
	$(PY) -m service

test: install browser ## install, then run the whole test suite
	$(VENV)/bin/pytest

lint: install ## ruff check
	$(VENV)/bin/ruff check .

bench: install ## run the benchmarks (results in bench/results/)
	$(PY) -m bench --readme docs/benchmarks.md

# Debian's chromium for the browser tests. CI runs as root; elsewhere sudo is tried. Fails loudly if impossible.
browser: ## install Debian's chromium (for the browser tests) if it is missing
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; \
	else echo "error: $(CHROMIUM) is missing and installing it needs root: apt-get install chromium" >&2; exit 1; fi; \
	$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y chromium \
		|| { echo "error: could not install chromium with apt-get; the browser tests need $(CHROMIUM)" >&2; exit 1; }; \
	[ -x $(CHROMIUM) ] || { echo "error: chromium installed but $(CHROMIUM) is missing" >&2; exit 1; }

mpii-weights: install ## download + convert the published MPII checkpoints to weights/mpii_hg{2,8}.onnx (internet)
	PYTHON=$(PY) scripts/fetch_published.sh

docker-build: ## build the GPU image (MODEL=file in weights/ selects the model)
	DOCKER_BUILDKIT=1 $(DOCKER) build $(BASE_ARGS) --build-arg MODEL=$(MODEL) -t $(IMAGE):gpu .

docker-build-cpu: ## build the CPU image
	DOCKER_BUILDKIT=1 $(DOCKER) build $(BASE_ARGS) -f Dockerfile.cpu --build-arg MODEL=$(MODEL) -t $(IMAGE):cpu .

docker-build-mpii8: ## build the GPU image with the published MPII 8-stack model, converted in the build (internet)
	DOCKER_BUILDKIT=1 $(DOCKER) build $(BASE_ARGS) --build-arg WEIGHTS=mpii8 --build-arg MODEL=mpii_hg8.onnx \
		-t $(IMAGE):gpu-mpii8 .

docker-base: ## make local base images from Debian's packages, for hosts without Docker Hub (root, debootstrap)
	scripts/docker_base.sh

docker-test: install ## build both images and check them for real (installs and starts Docker if missing; root)
	scripts/docker_test.sh

lock: ## regenerate requirements/*.txt from requirements/*.in
	PYTHON=$(PYTHON) scripts/lock.sh

clean: ## remove caches and the install stamps (the next install re-checks every lock file)
	rm -rf .pytest_cache .ruff_cache .hypothesis $(SERVE_STAMP) $(INSTALL_STAMP) $(COMPOSE_STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove the virtualenv
	rm -rf $(VENV)
