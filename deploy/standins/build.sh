#!/usr/bin/env bash
# Builds stand-ins for the official base images that docker-compose.yml and the Dockerfiles use,
# under the exact names they use, for machines that cannot reach a container registry:
#
#   debian:bookworm-slim      mmdebstrap (minbase, Debian's slim exclusions), then podman import
#   redis:7.0                 redis/Containerfile    (Debian's redis-server 7.0.15)
#   haproxy:2.6               haproxy/Containerfile  (Debian's haproxy 2.6.12)
#   python:3.11-slim          python/Containerfile   (Debian's python3 3.11.2)
#   prom/prometheus:v2.42.0   prometheus/Containerfile (Debian's prometheus 2.42.0)
#   rust:<v>-slim-bookworm    rust/Containerfile     (this machine's Rust toolchain, version <v>)
#
# Only missing or changed ones are built (FORCE=1 rebuilds all). Each keeps what the compose file relies
# on from the official image (entrypoint, configuration path, user, data directory); the book
# (docs/src/guides/compose.md, "Stand-in base images") lists how each differs. Needs podman, mmdebstrap and Debian's mirror.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# The Rust version of the build stage: session-server/Dockerfile's default.
rust_version="$(sed -n 's/^ARG RUST_VERSION=//p' "$root/session-server/Dockerfile")"

have() { [ "${FORCE:-0}" != 1 ] && podman image exists "$1"; }
log() { echo "standins: $*" >&2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! have docker.io/library/debian:bookworm-slim; then
  log "debian:bookworm-slim (mmdebstrap, about a minute)"
  # As the official slim variant: no documentation, manuals or translations (copyright kept), and
  # apt keeps no downloaded packages or caches (the official images' docker-clean settings).
  mmdebstrap --variant=minbase --quiet \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/groff/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --aptopt='Acquire::Languages "none"' \
    --aptopt='Acquire::GzipIndexes "true"' \
    --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
    --aptopt='APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
    --aptopt='Dir::Cache::pkgcache ""' \
    --aptopt='Dir::Cache::srcpkgcache ""' \
    bookworm "$work/rootfs.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import --quiet --change 'CMD ["bash"]' "$work/rootfs.tar" docker.io/library/debian:bookworm-slim >/dev/null
  rm -f "$work/rootfs.tar"
fi

# An image is rebuilt when its Containerfile or entrypoint changed (their digest is a label).
digest() { cat "$1"/* | sha256sum | cut -c1-16; }
current() { # current NAME DIGEST: the image exists and was built from these files
  have "$1" && [ "$(podman image inspect --format '{{index .Labels "standin.digest"}}' "$1")" = "$2" ]
}
build() { # name context [podman build options]; a name without an owner is an official image
  local name="$1" context="$2" sum ref
  shift 2
  case "$name" in */*) ref="docker.io/$name" ;; *) ref="docker.io/library/$name" ;; esac
  sum="$(digest "$context")"
  if ! current "$ref" "$sum"; then
    log "$name"
    podman build --quiet --pull=never --label "standin.digest=$sum" -t "$ref" "$@" "$context" >/dev/null
  fi
}
build redis:7.0 "$here/redis"
build haproxy:2.6 "$here/haproxy"
build python:3.11-slim "$here/python"
build prom/prometheus:v2.42.0 "$here/prometheus"

rust_image="rust:${rust_version}-slim-bookworm"
if ! current "docker.io/library/$rust_image" "$(digest "$here/rust")"; then
  rustc_bin="$(rustup which rustc 2>/dev/null || command -v rustc)"
  toolchain_dir="$(cd "$(dirname "$(readlink -f "$rustc_bin")")/.." && pwd)"
  host_version="$("$rustc_bin" --version | cut -d' ' -f2)"
  case "$host_version" in
    "$rust_version" | "$rust_version".*) ;;
    *) log "the Dockerfile wants Rust $rust_version, this machine has $host_version"; exit 1 ;;
  esac
  toolchain="${host_version}-x86_64-unknown-linux-gnu"
  # rustc, cargo and the standard library: the official image's minimal profile.
  mkdir -p "$work/rust/toolchain/bin"
  cp "$toolchain_dir/bin/rustc" "$toolchain_dir/bin/cargo" "$work/rust/toolchain/bin/"
  cp -a "$toolchain_dir/lib" "$work/rust/toolchain/"
  cp "$here/rust/Containerfile" "$work/rust/"
  podman build --quiet --pull=never --label "standin.digest=$(digest "$here/rust")" \
    -t "docker.io/library/$rust_image" --build-arg "TOOLCHAIN=$toolchain" "$work/rust" >/dev/null
fi
