#!/usr/bin/env bash
# Kafka -> engine -> Kafka throughput: starts a broker (scripts/kafka-broker.sh,
# unless CARBONFLOW_KAFKA_BOOTSTRAP names one), builds the `kafka_throughput`
# harness in release once, runs it REPEAT times with 1 and with 2 workers,
# each in its own process and on a fresh topic, appends every run to
# benches/results/kafka_throughput.csv and prints a Markdown table of this
# session's runs for BENCHMARKS.md (median and best of the repeats).
#
#   bash benches/run-kafka-throughput.sh                            # 1,000,000 ticks over 1,000 nodes, 4 partitions, 3 repeats
#   TICKS=200000 PARTITIONS=2 FORMAT=msgpack REPEAT=5 bash benches/run-kafka-throughput.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

ticks="${TICKS:-1000000}"
nodes="${NODES:-1000}"
partitions="${PARTITIONS:-4}"
format="${FORMAT:-json}"
repeat="${REPEAT:-3}"
results="benches/results/kafka_throughput.csv"
binary="${CARGO_TARGET_DIR:-target}/release/kafka_throughput"

cargo build --release -p carbonflow-benches --bin kafka_throughput

if [[ -z "${CARBONFLOW_KAFKA_BOOTSTRAP:-}" ]]; then
    broker_dir="$(pwd)/.cache/kafka-broker/bench"
    CARBONFLOW_KAFKA_BOOTSTRAP="$(scripts/kafka-broker.sh start --dir "$broker_dir")"
    export CARBONFLOW_KAFKA_BOOTSTRAP
    trap 'scripts/kafka-broker.sh stop --dir "$broker_dir"' EXIT
fi

mkdir -p "$(dirname "$results")"
before=0
if [[ -f "$results" ]]; then
    before=$(wc -l < "$results")
fi

for workers in 1 2; do
    for _ in $(seq "$repeat"); do
        "$binary" --ticks "$ticks" --nodes "$nodes" --partitions "$partitions" --format "$format" --workers "$workers" --output-csv "$results"
    done
done

echo
echo "Kafka -> engine -> Kafka, $ticks $format ticks over $nodes nodes on $partitions partitions, tumbling 1-minute COUNT/AVG/MIN/MAX/SUM, EMIT FINAL, $repeat runs each (git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)):"
echo
# Columns: timestamp,format,workers,partitions,ticks,nodes,elapsed_s,ticks_per_s,windows,git_rev
tail -n "+$((before + 1))" "$results" | grep -v '^timestamp,' | sort -t, -k3,3n -k8,8n | awk -F, '
    function flush() {
        if (n == 0) return
        median = (n % 2) ? rates[(n + 1) / 2] : (rates[n / 2] + rates[n / 2 + 1]) / 2
        printf "| %d | %.0f | %.0f | %d |\n", key, median, rates[n], n
        n = 0
    }
    BEGIN {
        print "| workers | median ticks/s | best ticks/s | runs |"
        print "| ---: | ---: | ---: | ---: |"
    }
    {
        if ($3 != key) { flush(); key = $3 }
        rates[++n] = $8
    }
    END { flush() }'
