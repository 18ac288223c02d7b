#!/usr/bin/env bash
# Runs every cargo fuzz target (fuzz/, `cargo fuzz list`) for SECONDS each
# (default 60), one after the other, and says which found a crash or a hang.
#
#   scripts/fuzz.sh              # a minute per target
#   scripts/fuzz.sh 300          # five minutes per target
#   FUZZ_TARGETS="sql_check market_pjm_lmp" scripts/fuzz.sh 600
#   FUZZ_SANITIZER=address scripts/fuzz.sh   # with AddressSanitizer (slower; default none)
#
# Installs cargo-fuzz from crates.io when it is missing. cargo fuzz passes
# unstable rustc flags, and the machine has one stable toolchain, hence
# RUSTC_BOOTSTRAP=1. Our crates forbid unsafe code, so the default sanitizer
# is none: the findings are panics, overflows (the fuzz profile keeps
# overflow checks) and hangs, and the targets run about twice as fast.
#
# Seed corpora are built at run time, never committed: the shipped queries
# (queries/*.sql), the CSV fixtures next to them, a few JSON and MessagePack
# ticks, and for each market format the files of its operator under
# $CARBONFLOW_MARKET_DATA (default ../shared/data/markets; skipped with a
# message when missing). Corpora grow in target/fuzz/corpus/<target>;
# a crashing or hanging input is saved as target/fuzz/artifacts/<target>/*
# and `cargo fuzz run <target> <that file>` replays it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
root="${CARGO_TARGET_DIR:-$(pwd)/target}/fuzz"
market_data="${CARBONFLOW_MARKET_DATA:-../shared/data/markets}"
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

fuzz() { cargo fuzz "$1" --fuzz-dir fuzz --sanitizer "$sanitizer" --target-dir "$root" "${@:2}"; }

fuzz build

# The directory of a market format's files under $CARBONFLOW_MARKET_DATA.
market_dir() {
    case "$1" in
        market_pjm_lmp) echo pjm ;;
        market_spp_lmp) echo spp ;;
        market_miso_lmp) echo miso ;;
        market_nyiso_lbmp) echo nyiso ;;
        market_ieso_price) echo ieso ;;
        market_aeso_pool_price) echo aeso ;;
        market_entsoe_a44) echo entsoe ;;
        market_aemo_price) echo aemo ;;
        market_eia_gas) echo eia ;;
        market_ecb_fx) echo ../fx ;;
        *) echo "" ;;
    esac
}

# Puts the seeds of target $1 into its corpus (again on every run: a run
# interrupted while seeding must not leave the corpus without them).
seed() {
    local target="$1" corpus="$root/corpus/$1"
    mkdir -p "$corpus"
    case "$target" in
        sql_check)
            cp queries/*.sql "$corpus/" ;;
        sql_mutate_shipped)
            # One byte picks a shipped query; libFuzzer appends the edits.
            local count
            count=$(ls queries/*.sql | wc -l)
            for i in $(seq 0 $((count - 1))); do printf "\\x$(printf %02x "$i")" >"$corpus/query-$i"; done ;;
        record_csv)
            # The first byte holds the csv.* option flags (0: the defaults).
            for file in queries/data/*.csv; do
                head -n 20 "$file" | { printf '\x00'; cat; } >"$corpus/$(basename "$file")"
            done ;;
        record_json)
            printf '{"node":"N1","ts":"2024-01-01 00:00:00","price":31.5,"volume":7,"firm":true}' >"$corpus/tick"
            printf '{"node":"N2","ts":1704067200000,"price":"12","volume":null}' >"$corpus/epoch-millis" ;;
        record_msgpack)
            python3 -c '
import struct, sys
def text(s): b = s.encode(); return bytes([0xa0 | len(b)]) + b
tick = bytes([0x85]) + text("node") + text("N1") + text("ts") + text("2024-01-01 00:00:00") \
    + text("price") + b"\xcb" + struct.pack(">d", 31.5) + text("volume") + bytes([7]) + text("firm") + b"\xc3"
sys.stdout.buffer.write(tick)' >"$corpus/tick" ;;
        market_*)
            local dir
            dir="$(market_dir "$target")"
            if [[ -z "$dir" ]]; then
                echo "fuzz: no sample files of $target's operator; its corpus starts empty" >&2
            elif [[ ! -d "$market_data/$dir" ]]; then
                echo "fuzz: $market_data/$dir not found (set CARBONFLOW_MARKET_DATA); $target's corpus starts empty" >&2
            else
                for file in "$market_data/$dir"/*; do
                    [[ "$(basename "$file")" == PROVENANCE.md ]] && continue
                    # libFuzzer would cut longer seeds to -max_len anyway.
                    head -c 16384 "$file" >"$corpus/$(basename "$file")"
                done
            fi ;;
    esac
}

max_len() {
    case "$1" in
        # Market files are long; 16 KiB holds a header and hundreds of rows
        # (at 64 KiB the ECB history parsed only about 30 times a second).
        sql_* | market_*) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

targets="${FUZZ_TARGETS:-$(fuzz list)}"
failed=()
for target in $targets; do
    seed "$target"
    mkdir -p "$root/artifacts/$target"
    echo "fuzz: $target for $seconds s" >&2
    if ! fuzz run "$target" "$root/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="$root/artifacts/$target/" -print_final_stats=1 >"$root/$target.log" 2>&1; then
        failed+=("$target")
        echo "fuzz: $target FAILED: $(grep -m1 -E 'panicked|ERROR|deadly signal|timeout' "$root/$target.log" || true)" >&2
    fi
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$root/$target.log" | tail -1 >&2 || true
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: findings in ${failed[*]} (inputs in $root/artifacts/, logs in $root/*.log)" >&2
    exit 1
fi
echo "fuzz: no findings" >&2
