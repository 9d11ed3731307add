#!/usr/bin/env bash
# Local base images for the Dockerfiles, for hosts that cannot pull from Docker Hub (air-gapped, or behind a registry
# block): Debian bookworm made with debootstrap from Debian's package archive, then `docker import`.
#
#   scripts/docker_base.sh            make both images unless they exist (about a minute; needs root and debootstrap)
#   scripts/docker_base.sh --rebuild  make them again
#
#   hourglass-base:bookworm        python3 (3.11), venv, ca-certificates: the PYTHON_IMAGE of both Dockerfiles
#   hourglass-base:bookworm-build  the same plus this machine's CA bundle (/etc/ssl/certs/ca-certificates.crt), so
#                                  that pip in the build stages trusts what this machine trusts (a TLS-inspecting
#                                  proxy, say): their BUILD_IMAGE. The runtime stages never start from it.
#
# Then: docker build -f Dockerfile.cpu --build-arg PYTHON_IMAGE=hourglass-base:bookworm \
#         --build-arg BUILD_IMAGE=hourglass-base:bookworm-build -t hourglass-serve:cpu .
# (compose: PYTHON_IMAGE=... BUILD_IMAGE=... docker compose -f docker-compose.cpu.yml up -d --build).
# MIRROR picks the Debian archive (default http://deb.debian.org/debian); DOCKER the client (default docker).
set -euo pipefail

DOCKER=${DOCKER:-docker}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
RUNTIME=hourglass-base:$SUITE
BUILD=hourglass-base:$SUITE-build
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [ "${1:-}" != --rebuild ] && "$DOCKER" image inspect "$RUNTIME" "$BUILD" >/dev/null 2>&1; then
    echo "docker_base: $RUNTIME and $BUILD exist (--rebuild makes them again)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "docker_base: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "docker_base: debootstrap needs root" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}
# what a container never needs: package lists and caches, documentation, translations
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/locale/* "$root"/usr/share/info/*

changes=(-c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]')
tar -C "$root" -c . | "$DOCKER" import "${changes[@]}" -m "debootstrap $SUITE minbase + python3 ($MIRROR)" - "$RUNTIME" >/dev/null

cp "$CA_BUNDLE" "$work/ca-certificates.crt"
cat >"$work/Dockerfile" <<EOF
FROM $RUNTIME
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
EOF
"$DOCKER" build -q -t "$BUILD" "$work" >/dev/null
"$DOCKER" image ls hourglass-base --format 'docker_base: {{.Repository}}:{{.Tag}} {{.Size}}'
