#!/usr/bin/env bash
# Runs every fuzz target of session-server for a short, fixed time (default 10 s each), so CI
# catches a parser that panics or breaks one of its properties on inputs libFuzzer finds.
#
#   session-server/fuzz/smoke.sh            # every target, 10 s each
#   FUZZ_SECONDS=300 session-server/fuzz/smoke.sh token cookie_header
#
# cargo-fuzz needs nightly-only compiler flags (-Z sanitizer=address and friends). On a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them; the stable toolchain ships the sanitizer runtimes.
# The smoke builds in the dev profile (the service's dependencies unoptimised, the code under
# test optimised: see fuzz/Cargo.toml), which halves CI's build from scratch; a longer campaign
# runs `cargo fuzz run <target>` in the release profile, several times faster per input.
# The corpus grows in fuzz/corpus/<target> (not in git) and any crashing input is saved in
# fuzz/artifacts/<target>; reproduce one with `cargo fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-10}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

cargo fuzz build --dev
summary=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log="$(mktemp)"
  if ! cargo fuzz run --dev "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -dict=fuzz/hostile.dict -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
    rm -f "$log"
    exit 1
  fi
  runs="$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo '?')"
  summary+=("$target: $runs executions in ${seconds} s, corpus $(ls "fuzz/corpus/$target" | wc -l) inputs")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
