#!/usr/bin/env bash
# The frameworks' floors in instructions per request: the actix-web hello world of the peer
# harness (under session-server) and an axum hello world (under the axum + tower-sessions peer,
# bench/floors/axum_hello.rs), counted by bench/instructions.sh beside session-server and the axum
# peer, so that what each session layer adds over its own framework can be read off one run.
#
# A third floor sits between the hello world and session-server: bench/floors/check_floor.rs,
# actix-web and one redis-rs HMGET per request on session-server's own crate versions and release
# profile (built as an example of the session-server package), with none of the session layer.
#
# The axum hello world is built from a copy of the peer crate (../shared/peers/rust-peers, left
# untouched) with one more binary, into the peers' target directory, so its dependencies are the
# peers' own.
#
# Usage: bench/floors.sh   (needs the release build of session-server and the peers built as
#        bench/fixed-rate.sh says; valgrind, redis-server)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS_DIR:-$root/../shared/peers}/rust-peers
target=${PEERS_TARGET:-/tmp/peers-target}
work=$(mktemp -d /tmp/floors.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r "$peers/Cargo.toml" "$peers/src" "$work/"
[ -f "$peers/Cargo.lock" ] && cp "$peers/Cargo.lock" "$work/"
cp "$root/bench/floors/axum_hello.rs" "$work/src/bin/axum_hello.rs"
(cd "$work" && CARGO_TARGET_DIR=$target cargo build --release -q --bin axum_hello)
cargo build --release -q -p session-server --example check_floor --manifest-path "$root/Cargo.toml"
"$root/bench/instructions.sh" "$root/target/release/session-server" \
  "peer:$target/release/hello" "peer:$root/target/release/examples/check_floor" "peer:$target/release/axum_session_peer" "peer:$target/release/axum_hello"
