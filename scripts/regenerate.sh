#!/usr/bin/env bash
# Regenerate the committed results (issue 13.5) for one model: the paper's 5 seeds x 200 test inputs for the
# analyses, seeds 42-44 x 200 for re-weighting and compression. Every command resumes from the finished parts
# in docs/results/<model>/parts, so this can be stopped and rerun at any point.
#   usage: scripts/regenerate.sh MODEL [OUT_ROOT]     (one thread per model: OMP_NUM_THREADS=1 is set here)
set -euo pipefail
MODEL=${1:?give a model, e.g. smollm2-135m}
OUT=${2:-docs/results}/$MODEL
ANCHORLENS=${ANCHORLENS:-anchorlens}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
# The three short-prompt tasks of every experiment first, AG News (prompts 3-4x longer) last, so that an interrupted
# regeneration leaves every experiment with some tasks rather than some experiments with every task. A command's
# summary covers all finished parts in its folder, so the last pass writes the summaries over all four tasks.
for TASKS in "sst2 trec emoc" "sst2 trec emoc agnews"; do
  for experiment in auroc saliency diagnose isolation; do
    $ANCHORLENS $experiment --task $TASKS --model "$MODEL" --n-test 200 --seeds 42 43 44 45 46 --out "$OUT"
  done
  for experiment in reweight compress; do
    $ANCHORLENS $experiment --task $TASKS --model "$MODEL" --n-test 200 --seeds 42 43 44 --out "$OUT"
  done
done
