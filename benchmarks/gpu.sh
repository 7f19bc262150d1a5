#!/usr/bin/env bash
# The GPU benchmark of issue 16.3, prepared to run once on a lent GPU machine (never run on CPU and called GPU
# numbers): saliency at batch sizes 1, 8 and 32 against the paper's protocol (batch 1, padded to the longest
# prompt, full logits everywhere), forward-only analyses against a bare forward, compression's speed-ups, and
# peak memory, on both offline models. Every JSON names the device (`device`) and goes to OUT.
#   usage: bash benchmarks/gpu.sh [OUT]        (default benchmarks/results/gpu; about 10 minutes on one H200)
set -euo pipefail
OUT=${1:-benchmarks/results/gpu}
PYTHON=${PYTHON:-.venv/bin/python}
$PYTHON -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: this script measures a GPU'; print(torch.cuda.get_device_name(0))"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.csv" 2>/dev/null || true
for model in gemma-3-270m smollm2-135m; do
  for batch in 1 8 32; do
    $PYTHON benchmarks/bench.py --model "$model" --sections saliency --tasks sst2 agnews --n-prompts 64 \
      --batch-size "$batch" --repeats 3 --out "$OUT/batch-$batch"
  done
  $PYTHON benchmarks/bench.py --model "$model" --sections forward_only compression memory \
    --tasks sst2 trec emoc agnews --n-prompts 64 --batch-size 8 --repeats 3 --out "$OUT"
done
