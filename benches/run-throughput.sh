#!/usr/bin/env bash
# The end-to-end throughput matrix: builds the `throughput` harness in release
# once, runs memory and csv with 1 and 2 workers and the hand loop, each in its
# own process (so each peak RSS is its own), appends every result to
# benches/results/throughput.csv and prints a Markdown table of this session's
# runs for BENCHMARKS.md.
#
#   bash benches/run-throughput.sh            # 1,000,000 ticks over 1,000 nodes
#   TICKS=200000 NODES=500 bash benches/run-throughput.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ticks="${TICKS:-1000000}"
nodes="${NODES:-1000}"
results="benches/results/throughput.csv"
binary="${CARGO_TARGET_DIR:-target}/release/throughput"

cargo build --release -p carbonflow-benches --bin throughput

mkdir -p "$(dirname "$results")"
# Rows already in the file are earlier sessions; only the ones after them go in the table.
before=0
if [[ -f "$results" ]]; then
    before=$(wc -l < "$results")
fi

run() {
    "$binary" --ticks "$ticks" --nodes "$nodes" --output-csv "$results" "$@"
}

run --source handloop
for workers in 1 2; do
    run --source memory --workers "$workers"
    run --source csv --workers "$workers"
done

echo
echo "Throughput, $ticks ticks over $nodes nodes, tumbling 1-minute COUNT/AVG/MIN/MAX/SUM (git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)):"
echo
tail -n "+$((before + 1))" "$results" | grep -v '^timestamp,' | awk -F, '
    { mode[NR] = $2; workers[NR] = $3; elapsed[NR] = $6; rate[NR] = $7; rss[NR] = $8
      if ($2 == "handloop") ceiling = $7 }
    END {
        print "| mode | workers | elapsed (s) | ticks/s | ticks/s per worker | peak RSS (MiB) | hand loop / mode |"
        print "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= NR; i++) {
            ratio = (ceiling > 0 && rate[i] > 0) ? sprintf("%.2f×", ceiling / rate[i]) : "n/a"
            printf "| %s | %d | %.3f | %.0f | %.0f | %s | %s |\n", mode[i], workers[i], elapsed[i], rate[i], rate[i] / workers[i], rss[i], ratio
        }
    }'
