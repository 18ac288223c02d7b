#!/usr/bin/env bash
# permessage-deflate against plain frames: ws_latency (release, 1 engine
# worker) with each --deflate mode in turn (off, per-message,
# context-takeover), ROUNDS times, so that a change in the machine's load
# hits every mode alike. Each run is preceded by the load average.
#   bash benches/run-ws-deflate.sh [RATE] [ROUNDS] [extra ws_latency arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-10000}"
rounds="${2:-3}"
shift $(($# < 2 ? $# : 2))
cargo build --release -p carbonflow-benches --bin ws_latency
for round in $(seq "$rounds"); do
    for mode in off per-message context-takeover; do
        echo "round $round, load average $(cut -d' ' -f1-3 /proc/loadavg)"
        ./target/release/ws_latency --rate "$rate" --seconds 10 --deflate "$mode" "$@"
    done
done
