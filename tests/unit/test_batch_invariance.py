"""No experiment's numbers depend on how its test inputs are batched (SPEC §8: batch size 1 and 8 agree).

Each experiment runs on a tiny random model with the same seed and test inputs at batch sizes 1, 3 and 8; its
seed table and its per-example table must agree to float rounding. Padding (right-padded batches of
different lengths), the grouping of prompts into batches and any random draw keyed by something other than
(seed, example, ...) would all show here. Timing columns are left out: they measure the machine, not the model.
"""

from __future__ import annotations

import pandas as pd
import pytest

from anchorlens.experiments import (
    AurocConfig,
    CompressConfig,
    DiagnoseConfig,
    IsolationConfig,
    ReweightConfig,
    SaliencyConfig,
    run_auroc,
    run_compress,
    run_diagnose,
    run_isolation,
    run_reweight,
    run_saliency,
)

N_TEST = 5  # batch size 3 then splits the inputs 3 + 2, and 8 takes them all in one padded batch
BATCH_SIZES = (1, 3, 8)

#: experiment -> (run function, config class, the small settings it runs with besides seeds / n_test / batch_size)
EXPERIMENTS = {
    "saliency": (run_saliency, SaliencyConfig, {}),
    "isolation": (run_isolation, IsolationConfig, {"k": (1, 2)}),
    "auroc": (run_auroc, AurocConfig, {}),
    "diagnose": (run_diagnose, DiagnoseConfig, {"layer": 1, "min_per_class": 2, "n_components": 2}),
    "reweight": (run_reweight, ReweightConfig, {"epochs": 2, "extra_per_class": 2}),
    "compress": (run_compress, CompressConfig, {"random_draws": 3, "timing_repeats": 1}),
}
#: Columns that measure wall-clock time.
TIMING_COLUMNS = {"compress": ("seconds_per_input", "speedup")}


def in_a_fixed_order(examples: pd.DataFrame) -> pd.DataFrame:
    """Per-example rows sorted by what identifies them (seed, keys, example, split), so the comparison does not
    rest on the order the batches happened to run in."""
    identifying = [c for c in examples.columns if examples[c].dtype.kind in "iuOSb"]
    return examples.sort_values(identifying, kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_batch_size_changes_no_number(llama_like, experiment):
    run, config_class, settings = EXPERIMENTS[experiment]
    results = [
        run(llama_like, "sst2", config_class(seeds=(7,), n_test=N_TEST, batch_size=size, **settings), progress=False)
        for size in BATCH_SIZES
    ]
    timing = list(TIMING_COLUMNS.get(experiment, ()))
    reference = results[0]
    assert len(reference.frame) > 0
    for size, result in zip(BATCH_SIZES[1:], results[1:]):
        pd.testing.assert_frame_equal(
            result.frame.drop(columns=timing),
            reference.frame.drop(columns=timing),
            rtol=1e-4,
            atol=1e-5,
            obj=f"{experiment} seed rows, batch {size} vs 1",
        )
    assert not reference.examples.empty, f"{experiment} leaves no per-example rows"
    assert "example" in reference.examples.columns
    expected = in_a_fixed_order(reference.examples.drop(columns=timing, errors="ignore"))
    for size, result in zip(BATCH_SIZES[1:], results[1:]):
        pd.testing.assert_frame_equal(
            in_a_fixed_order(result.examples.drop(columns=timing, errors="ignore")),
            expected,
            rtol=1e-4,
            atol=1e-5,
            obj=f"{experiment} per-example rows, batch {size} vs 1",
        )
