#!/usr/bin/env bash
# The end-to-end throughput matrix: builds the `throughput` harness in release
# once, runs every configuration REPEAT times, each in its own process (so each
# peak RSS is its own), appends every run to benches/results/throughput.csv and
# prints a Markdown table of this session's runs for BENCHMARKS.md: the median
# and the best of the repeats, because wall-clock times on a shared 2-core VM
# vary by tens of percent from run to run.
#
#   bash benches/run-throughput.sh                       # 1,000,000 ticks over 1,000 nodes, 5 repeats
#   TICKS=200000 NODES=500 REPEAT=3 bash benches/run-throughput.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ticks="${TICKS:-1000000}"
nodes="${NODES:-1000}"
repeat="${REPEAT:-5}"
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
    for _ in $(seq "$repeat"); do
        "$binary" --ticks "$ticks" --nodes "$nodes" --output-csv "$results" "$@"
    done
}

run --source handloop
run --source handloop-strings
for workers in 1 2; do
    run --source memory --workers "$workers" --emit final
    run --source memory --workers "$workers" --emit changes
    run --source csv --workers "$workers" --emit final
done

echo
echo "Throughput, $ticks ticks over $nodes nodes, tumbling 1-minute COUNT/AVG/MIN/MAX/SUM, $repeat runs each (git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)):"
echo
# Columns: timestamp,mode,emit,workers,ticks,nodes,elapsed_s,ticks_per_s,peak_rss_mb,git_rev
tail -n "+$((before + 1))" "$results" | grep -v '^timestamp,' | sort -t, -k2,2 -k4,4n -k3,3 -k8,8n | awk -F, '
    function flush() {
        if (n == 0) return
        median = (n % 2) ? rates[(n + 1) / 2] : (rates[n / 2] + rates[n / 2 + 1]) / 2
        best = rates[n]
        if (key_mode == "handloop") ceiling = median
        if (key_mode == "handloop-strings") strings = median
        line[++lines] = sprintf("%s|%s|%d|%.0f|%.0f|%.0f|%s", key_mode, key_emit, key_workers, median, best, median / key_workers, rss)
        n = 0
    }
    {
        key = $2 "," $3 "," $4
        if (key != current) { flush(); current = key; key_mode = $2; key_emit = $3; key_workers = $4 }
        rates[++n] = $8; rss = $9
    }
    END {
        flush()
        print "| mode | emit | workers | median ticks/s | best ticks/s | median per worker | peak RSS (MiB, last run) | hand loop / mode | string hand loop / mode |"
        print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= lines; i++) {
            split(line[i], f, "|")
            ratio = (ceiling > 0 && f[4] > 0) ? sprintf("%.1f×", ceiling / f[4]) : "n/a"
            ratio_strings = (strings > 0 && f[4] > 0) ? sprintf("%.1f×", strings / f[4]) : "n/a"
            printf "| %s | %s | %d | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], ratio, ratio_strings
        }
    }'
