"""`reproduce`: every experiment into one folder, a report with the paper beside it, a manifest; reruns resume."""

from __future__ import annotations

import pytest

from anchorlens.errors import InvalidConfigError
from anchorlens.reproduce import ReproduceConfig, markdown_table


def test_unknown_experiment_is_refused():
    with pytest.raises(InvalidConfigError, match="unknown experiments"):
        ReproduceConfig(experiments=("nope",))


def test_markdown_table():
    import pandas as pd

    assert markdown_table(pd.DataFrame({"a": [1.0], "b": ["x"]})) == "| a | b |\n|---|---|\n| 1.000 | x |"


def test_reproduce_settings_are_the_experiments_settings_with_the_main_jobs_defaults():
    import dataclasses

    from anchorlens.experiments.common import ExperimentConfig
    from anchorlens.reproduce import MAIN_JOB_N_TEST, MAIN_JOB_SEEDS

    mine = {field.name: field for field in dataclasses.fields(ReproduceConfig)}
    theirs = {field.name: field for field in dataclasses.fields(ExperimentConfig)}
    for name in ("seeds", "batch_size", "dtype"):  # help text, option and default come from ExperimentConfig
        assert mine[name].metadata == theirs[name].metadata, name
    assert mine["n_test"].metadata["flag"] == theirs["n_test"].metadata["flag"]
    defaults, experiment_defaults = ReproduceConfig(), ExperimentConfig()
    assert (defaults.seeds, defaults.n_test) == (MAIN_JOB_SEEDS, MAIN_JOB_N_TEST)
    assert (defaults.batch_size, defaults.dtype) == (experiment_defaults.batch_size, experiment_defaults.dtype)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"seeds": ()}, "at least one seed"),
        ({"seeds": (42, 42)}, "seeds repeat"),
        ({"seeds": (-1,)}, "seeds must be 0 or more"),
        ({"n_test": 0}, "n_test must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_reproduce_settings_are_checked_as_the_experiments_are(values, message):
    with pytest.raises(InvalidConfigError, match=message):
        ReproduceConfig(**values)


@pytest.mark.bad_input  # a list of numpy integers and a None, as a user's script may pass them
def test_reproduce_seeds_are_normalised_and_n_test_must_be_a_number():
    import numpy as np

    seeds = ReproduceConfig(seeds=[np.int64(43), 44]).seeds  # type: ignore[arg-type]
    assert seeds == (43, 44) and isinstance(seeds, tuple) and all(type(seed) is int for seed in seeds)
    with pytest.raises(InvalidConfigError, match="n_test must be a number of test inputs per task and seed"):
        ReproduceConfig(n_test=None)  # type: ignore[arg-type]


def test_each_experiments_config_is_built_from_the_reproduction_settings():
    from anchorlens.experiments.common import ExperimentConfig
    from anchorlens.registry import EXPERIMENTS
    from anchorlens.reproduce import SHARED_SETTINGS, ReproduceConfig

    assert set(SHARED_SETTINGS) == {"seeds", "n_test", "batch_size", "dtype"}
    config = ReproduceConfig(seeds=(7, 8), n_test=3, batch_size=2, dtype="bfloat16")
    for spec in EXPERIMENTS.values():
        built = config.experiment_config(spec.config_class)
        assert isinstance(built, spec.config_class)
        assert (built.seeds, built.n_test, built.batch_size, built.dtype) == ((7, 8), 3, 2, "bfloat16")
        default = spec.config_class()
        assert built.shots_per_class == default.shots_per_class and built.model is None
    assert config.experiment_config(ExperimentConfig).seeds == (7, 8)


def test_the_main_job_runs_each_experiments_lighter_settings_and_full_runs_the_defaults():
    from anchorlens.paper import ISOLATION_K
    from anchorlens.registry import EXPERIMENTS

    light, full = ReproduceConfig(n_test=3), ReproduceConfig(n_test=3, full=True)
    isolation, compress = EXPERIMENTS["isolation"], EXPERIMENTS["compress"]
    assert light.settings_of(isolation).k == (5,) and full.settings_of(isolation).k == ISOLATION_K
    assert light.settings_of(compress).random_draws < full.settings_of(compress).random_draws == 20
    for spec in EXPERIMENTS.values():
        made = light.settings_of(spec)
        assert made.n_test == 3  # the shared settings stay
        assert {name: getattr(made, name) for name in spec.main_job} == spec.main_job
        assert full.settings_of(spec) == full.experiment_config(spec.config_class)
        assert full.lighter_settings(spec) == {}


def test_the_report_says_which_numbers_are_at_a_smoke_size():
    from anchorlens.reproduce import size_text

    smoke = size_text(ReproduceConfig())
    assert smoke.startswith("Size: a smoke test, not the paper's: 1 of the paper's 5 seeds; 20 test inputs")
    assert "isolation k 5 (full: 1 3 5 7)" in smoke and "compress random_draws 5 (full: 20)" in smoke
    assert "--seeds 42 43 44 45 46 --n-test 1000 --full" in smoke
    paper_size = ReproduceConfig(seeds=(42, 43, 44, 45, 46), n_test=1000, full=True)
    assert size_text(paper_size).startswith("Size: the paper's")
    assert "isolation" in size_text(ReproduceConfig(seeds=(42, 43, 44, 45, 46), n_test=1000))


def test_the_time_estimate_does_not_apply_the_main_jobs_measurements_to_a_full_run(tmp_path):
    from anchorlens.reproduce import RemainingTime

    pending = {"isolation": 4, "saliency": 4}
    light = RemainingTime(ReproduceConfig(), tmp_path, pending).seconds_left()
    full = RemainingTime(ReproduceConfig(full=True), tmp_path, pending).seconds_left()
    assert light[0] > 0 and light[1] == []
    # saliency has no lighter settings: its reference holds; isolation's was measured at k = 5 only
    assert full[1] == ["isolation"] and 0 < full[0] < light[0]
