#!/usr/bin/env bash
# Creates (once) the Python environment the examples and their tests use:
# target/python-env with websockets and msgpack. Prints the interpreter's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
env="$root/target/python-env"
if [ ! -x "$env/bin/python" ] || ! "$env/bin/python" -c 'import websockets, msgpack' 2>/dev/null; then
    python3 -m venv "$env" >&2
    "$env/bin/pip" install --quiet --disable-pip-version-check 'websockets==15.0.1' 'msgpack==1.1.2' >&2
fi
echo "$env/bin/python"
