#!/usr/bin/env bash
# Ingest -> WebSocket client latency at 10k and 100k ticks/s (open loop), with
# 1 engine worker, in release. Extra arguments go to every run, e.g.
#   bash benches/run-ws-latency.sh --seconds 30
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p carbonflow-benches --bin ws_latency
for rate in 10000 100000; do
    ./target/release/ws_latency --rate "$rate" --seconds 20 "$@"
done
