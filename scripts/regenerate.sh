#!/usr/bin/env bash
# Regenerate the committed results (issue 13.5) for one model: the paper's 5 seeds x 200 test inputs for the
# analyses and the methods alike (re-weighting and compression ran at seeds 42-44 until the third wave). Every
# command resumes from the finished parts in docs/results/<model>/parts, so this can be stopped and rerun.
#   usage: scripts/regenerate.sh MODEL [OUT_ROOT]     (one thread per model: OMP_NUM_THREADS=1 is set here)
set -euo pipefail
MODEL=${1:?give a model, e.g. smollm2-135m}
OUT=${2:-docs/results}/$MODEL
ANCHORLENS=${ANCHORLENS:-anchorlens}
PYTHON=${PYTHON:-python}  # the Python that has anchorlens (to list the method-choice runs below)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
ANALYSIS_SEEDS=(42 43 44 45 46)  # saliency, AUROC, diagnosis, isolation (the paper's 5 seeds)
METHOD_SEEDS=(42 43 44 45 46)    # re-weighting, compression (the paper's 5 seeds too)
# Breadth first: the whole job takes about a day of CPU per model, so an interrupted regeneration should leave
# every experiment with some parts rather than some experiments with all of them. Pass 1 runs one seed of every
# experiment on the three short-prompt tasks, pass 2 three seeds, pass 3 every seed and AG News (prompts 3-4x
# longer). Within a pass the cheap analyses come first, then compression (whose anchors a correctness fix
# changed), re-weighting, diagnosis and isolation (the costliest). A command's summary covers all finished parts
# in its folder, so every pass rewrites the summaries over everything finished so far.
for pass in 1 3 5; do
  TASKS="sst2 trec emoc"
  [ "$pass" = 5 ] && TASKS="sst2 trec emoc agnews"
  for experiment in auroc saliency compress reweight diagnose isolation; do
    case $experiment in
      compress | reweight) seeds=("${METHOD_SEEDS[@]:0:$pass}") ;;
      *) seeds=("${ANALYSIS_SEEDS[@]:0:$pass}") ;;
    esac
    $ANCHORLENS $experiment --task $TASKS --model "$MODEL" --n-test 200 --seeds "${seeds[@]}" --out "$OUT"
  done
done
# Method choices (issue 28 §3), each into a second folder beside the default one, judged by
# analyses/method_choices.py: isolation at the k of the paper's depth fraction (5/48 of the layers) where it is not
# among the default k, and saliency without the BOS column where the model's prompts start with one.
"$PYTHON" -c 'import sys; from anchorlens.claims.method_choices import second_folder_commands as c; print(*c(*sys.argv[1:]), sep="\n")' \
  "$MODEL" "$OUT" | while read -r command; do
  # shellcheck disable=SC2086  # a command of space-separated arguments without quoting
  $ANCHORLENS $command </dev/null  # the commands must not read the list being read here
done
