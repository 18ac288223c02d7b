#!/usr/bin/env bash
# Installs (once) what the dashboard's browser test drives: Debian's chromium
# (/usr/bin/chromium, with apt-get; needs root, as in CI) and playwright-core
# from npm into target/browser-env. Prints that directory; its node_modules
# holds playwright-core. playwright-core never downloads a browser of its own:
# the test launches /usr/bin/chromium.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
env="$root/target/browser-env"
playwright='playwright-core@1.64.1'

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "browser-env: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # Recommends (printing, avahi, notification daemons) are not needed headless; fonts are.
    apt-get install -y -qq --no-install-recommends chromium fonts-liberation >&2
fi
if [ ! -f "$env/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$env"
    npm install --prefix "$env" --no-audit --no-fund --loglevel=error "$playwright" >&2
fi
echo "$env"
