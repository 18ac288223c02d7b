#!/usr/bin/env bash
# Installs (once) ONNX Runtime for FORECAST queries into the project's Python
# environment, target/python-env (made by scripts/python-env.sh), where the
# engine finds it without any variable set. Prints the library's path.
#
#   scripts/onnxruntime.sh             the runtime (onnxruntime, numpy)
#   scripts/onnxruntime.sh --training  also what examples/models/train_forecaster.py needs
#
# The runtime's minor version must be at least the `api-NN` feature of the
# `ort` crate in Cargo.toml (api-24).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
packages=('onnxruntime==1.31.1' 'numpy==2.4.6')
if [ "${1:-}" = "--training" ]; then
    packages+=('onnx==1.23.2' 'autograd==1.9.1')
fi
python="$("$root/scripts/python-env.sh" "${packages[@]}")"
"$python" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[-1])'
