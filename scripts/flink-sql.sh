#!/usr/bin/env bash
# Runs carbonflow query files on Apache Flink, unchanged, all in one JVM:
#
#   scripts/flink-sql.sh FILE.sql [FILE.sql ...]
#
# Relative paths in the files are read from the current directory, as
# carbonflow reads them. What the runner does and adapts is described in
# scripts/flink/RunSqlFiles.java; scripts/flink-env.sh sets Flink up first.
set -euo pipefail
home="$("$(dirname "${BASH_SOURCE[0]}")/flink-env.sh")"
# Small jobs on a small machine: the client compiler starts fastest.
exec java -XX:TieredStopAtLevel=1 -Dlog4j.configurationFile="$home/log4j2.properties" -cp "$home/lib/*:$home/classes" RunSqlFiles "$@"
