#!/usr/bin/env bash
# Creates (once) the Python environment the examples, their tests and the
# project's tool scripts use: target/python-env with websockets and msgpack.
# Prints the interpreter's path.
#
#   scripts/python-env.sh                        the base environment
#   scripts/python-env.sh 'name==version' ...    also these pinned packages,
#                                                installed when missing or at another version
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
env="$root/target/python-env"
# One install at a time: tests run this script in parallel.
mkdir -p "$root/target"
exec 9>"$env.lock"
flock 9
if [ ! -x "$env/bin/python" ] || ! "$env/bin/python" -c 'import websockets, msgpack' 2>/dev/null; then
    python3 -m venv "$env" >&2
    "$env/bin/pip" install --quiet --disable-pip-version-check 'websockets==15.0.1' 'msgpack==1.1.2' >&2
fi
if [ "$#" -gt 0 ]; then
    # The requirements whose installed version differs (or that are absent).
    mapfile -t missing < <("$env/bin/python" - "$@" <<'PY'
import sys
from importlib import metadata
for requirement in sys.argv[1:]:
    name, _, version = requirement.partition("==")
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = None
    if installed != version:
        print(requirement)
PY
)
    if [ "${#missing[@]}" -gt 0 ]; then
        "$env/bin/pip" install --quiet --disable-pip-version-check "${missing[@]}" >&2
    fi
fi
echo "$env/bin/python"
