#!/usr/bin/env bash
# `make docker-test`: build both images and check them for real (tests/docker/), on a machine like CI's.
#
# What it prepares, and undoes what it started:
#   - Debian's docker.io (engine with BuildKit, client) and debootstrap, installed with apt-get when missing (root);
#   - dockerd, started when no engine answers, stopped at the end (its log: $WORK/dockerd.log);
#   - the bases: Docker Hub's python:3.11-slim when it can be pulled, else local ones from Debian's packages
#     (scripts/docker_base.sh), passed to the builds as PYTHON_IMAGE / BUILD_IMAGE;
#   - compose: `docker compose` (v2) when the client has it, else docker-compose 1.29 from .venv/compose.
# Then pytest runs tests/docker/ (HGS_DOCKER_TEST=1; elsewhere they skip). Extra arguments go to pytest.
# The images it leaves: hourglass-serve:cpu, hourglass-serve:gpu (and the hourglass-base ones).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "== $(date -u +%T) docker-test: $*"; }
WORK=$(mktemp -d)
started_dockerd=
cleanup() {
    if [ -n "$started_dockerd" ] && kill -0 "$started_dockerd" 2>/dev/null; then
        log "stopping the dockerd it started (pid $started_dockerd)"
        kill "$started_dockerd"
        for _ in $(seq 60); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- packages: Debian's engine (its client builds with BuildKit without buildx) and debootstrap ----
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "docker-test: needs ${missing[*]} (apt-get install, as root)" >&2; exit 1; }
    log "installing ${missing[*]} from Debian's packages"
    apt-get update -q >"$WORK/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$WORK/apt.log" 2>&1 ||
        { tail -20 "$WORK/apt.log" >&2; exit 1; }
fi
# a client that builds with BuildKit: Debian's (20.10 builds it in) unless DOCKER names another
DOCKER=${DOCKER:-$(if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi)}
export DOCKER DOCKER_BUILDKIT=1
# compose v1 builds through the `docker` on PATH: the same client
PATH="$(dirname "$DOCKER"):$PATH"
export PATH

# ---- engine ----
if ! "$DOCKER" info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "docker-test: no Docker engine answers, and starting one needs root" >&2; exit 1; }
    log "starting dockerd"
    /usr/sbin/dockerd --pidfile "$WORK/dockerd.pid" >"$WORK/dockerd.log" 2>&1 &
    started_dockerd=$!
    for _ in $(seq 120); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 0.5; done
    "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$WORK/dockerd.log" >&2; exit 1; }
fi
log "engine $("$DOCKER" version --format '{{.Server.Version}}'), client $DOCKER"

# ---- bases ----
if timeout 60 "$DOCKER" pull -q python:3.11-slim >/dev/null 2>&1; then
    log "base: python:3.11-slim from Docker Hub"
else
    log "Docker Hub unreachable: local bases from Debian's packages (scripts/docker_base.sh)"
    scripts/docker_base.sh
    export PYTHON_IMAGE=hourglass-base:bookworm BUILD_IMAGE=hourglass-base:bookworm-build
fi

# ---- compose ----
if "$DOCKER" compose version >/dev/null 2>&1; then
    COMPOSE="$DOCKER compose"
else
    COMPOSE="$PWD/.venv/compose/bin/docker-compose"
fi
export COMPOSE
log "compose: $($COMPOSE version --short 2>/dev/null || $COMPOSE version | head -1)"

log "pytest tests/docker"
HGS_DOCKER_TEST=1 .venv/bin/pytest tests/docker -p no:cacheprovider --timeout 3600 "$@"
log "done"
