#!/usr/bin/env bash
# Sets up (once) an Apache Flink runtime for the Flink reference tests
# (engine/tests/flink_reference.rs) under .cache/flink, and prints that
# directory. Safe to run again and from several tests at once: one run
# installs, the others wait on a lock, and a finished step is never redone.
#
#   .cache/flink/lib/      the jars of a Flink distribution that a local
#                          streaming SQL job needs (flink-dist, the table
#                          planner and runtime, CSV and file connectors, CEP,
#                          log4j), taken from the PyPI wheel
#                          apache-flink-libraries (PyFlink's jars; Maven
#                          Central is not reachable here). The wheel is
#                          downloaded without dependencies, unpacked and
#                          deleted; neither PyFlink nor a venv is installed.
#   .cache/flink/classes/  scripts/flink/RunSqlFiles.java, compiled (again
#                          whenever the source changes)
#   .cache/flink/log4j2.properties
#                          Flink's warnings and errors to standard error
#
# Needs java and javac 17: when either is missing, Debian's
# openjdk-17-jdk-headless is installed with apt-get (root only; a JRE alone
# could run Flink but not compile the runner). scripts/flink-sql.sh runs
# query files on this runtime.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="$root/.cache/flink"
version="2.3.0"
# Of the wheel's pyflink/lib: everything but flink-scala, flink-json and log4j's JSON layout.
jars=(
    "flink-dist-$version.jar"
    "flink-table-api-java-uber-$version.jar"
    "flink-table-planner-loader-$version.jar"
    "flink-table-runtime-$version.jar"
    "flink-connector-files-$version.jar"
    "flink-csv-$version.jar"
    "flink-cep-$version.jar"
    "log4j-api-2.25.3.jar"
    "log4j-core-2.25.3.jar"
    "log4j-slf4j-impl-2.25.3.jar"
    "log4j-1.2-api-2.25.3.jar"
)
runner="$root/scripts/flink/RunSqlFiles.java"

log() { echo "flink-env: $*" >&2; }

mkdir -p "$home"
exec 9>"$home/install.lock"
flock 9

if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        log "java or javac is missing and installing them needs root (apt-get install openjdk-17-jdk-headless)"
        exit 1
    fi
    log "installing openjdk-17-jdk-headless with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless >&2
fi

if [ ! -f "$home/lib/.complete-$version" ]; then
    download="$(mktemp -d "$home/download.XXXXXX")"
    trap 'rm -rf "$download"' EXIT
    log "downloading apache-flink-libraries==$version (about 330 MB) from PyPI"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$download" "apache-flink-libraries==$version" >&2
    rm -rf "$home/lib"
    mkdir -p "$home/lib"
    unzip -q -j -o "$download"/apache_flink_libraries-*.whl "${jars[@]/#/pyflink/lib/}" -d "$home/lib" >&2
    rm -rf "$download"
    touch "$home/lib/.complete-$version"
    log "unpacked ${#jars[@]} jars into $home/lib"
fi

if [ ! -f "$home/classes/RunSqlFiles.class" ] || ! cmp -s "$runner" "$home/classes/RunSqlFiles.java"; then
    log "compiling $runner"
    rm -rf "$home/classes"
    mkdir -p "$home/classes"
    javac -d "$home/classes" -cp "$home/lib/*" "$runner" >&2
    cp "$runner" "$home/classes/RunSqlFiles.java"
fi

if [ ! -f "$home/log4j2.properties" ]; then
    cat >"$home/log4j2.properties" <<'PROPERTIES'
rootLogger.level = WARN
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %-5p %c{1} - %m%n
PROPERTIES
fi
echo "$home"
