#!/usr/bin/env bash
# The cost of trace export on the session check, in CPU instructions per check
# (bench/instructions.sh: callgrind, repeatable whatever else the machine does): export off
# (no OTEL_* variable), then on at 1% and at 100% sampling (`traceidratio`: the checks carry no
# `traceparent`, so each one starts a trace here). An OTLP/HTTP receiver in Python on loopback
# answers the exports, so their cost (encoding, the HTTP request) is counted too; it prints how
# many spans' worth of bytes it received.
#
# Usage: bench/traces.sh [session-server binary]
#        BASELINE=<binary built before trace export existed> bench/traces.sh   (adds that line)
# Needs what bench/instructions.sh needs. Bounded: N checks per line (default 1000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/session-server}
otlp_port=${OTLP_PORT:-14318}
work=$(mktemp -d)
python3 - "$otlp_port" "$work/received" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(out, "a") as f:
            f.write(f"{self.path} {len(body)}\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
PY
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -rf "$work"' EXIT
line() { echo "$1: $("$root/bench/instructions.sh" "$bin" | sed 's/^[^:]*: //')"; }
if [ -n "${BASELINE:-}" ]; then
  echo "before trace export existed: $("$root/bench/instructions.sh" "$BASELINE" | sed 's/^[^:]*: //')"
fi
line "export off"
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$otlp_port OTEL_TRACES_SAMPLER=traceidratio
OTEL_TRACES_SAMPLER_ARG=0.01 line "export on, 1% sampled"
OTEL_TRACES_SAMPLER_ARG=1 line "export on, 100% sampled"
echo "receiver: $(wc -l <"$work/received" 2>/dev/null || echo 0) export requests, $(awk '{s+=$2} END {print s+0}' "$work/received" 2>/dev/null) bytes"
