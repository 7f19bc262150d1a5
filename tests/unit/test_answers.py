"""What the commands print: answers with intervals (never a NaN spread), help texts, option spellings, warnings."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from anchorlens import cli
from anchorlens.answers import ONE_SEED, answer, spread_table
from anchorlens.experiments import ReweightResult
from anchorlens.experiments.reweight import ReweightConfig


def _one_seed_reweight() -> ReweightResult:
    rng = np.random.default_rng(0)
    examples = pd.DataFrame(
        [
            {"task": "sst2", "model": "m", "seed": 42, "example": e, "gold": e % 2, "method": method, "prediction": 0}
            for method in ("vanilla_1shot", "reweight")
            for e in range(40)
        ]
    )
    examples["correct"] = rng.integers(0, 2, len(examples)).astype(float)
    frame = examples.groupby(["task", "model", "seed", "method"], as_index=False, sort=False).agg(
        accuracy=("correct", "mean"), n=("correct", "size")
    )
    return ReweightResult.from_frame(frame, ReweightConfig(seeds=(42,)), examples)


def test_one_seed_prints_intervals_and_no_nan_std():
    result = _one_seed_reweight()
    assert result.summary()["accuracy_std"].isna().all()  # what used to be printed
    text = answer(result)
    assert "95% interval" in text and "nan" not in text.lower() and "accuracy_std" not in text
    low, high = result.summary_with_ci().loc[0, ["ci_low", "ci_high"]]
    assert f"[{low:.3f}, {high:.3f}]" in text


def test_a_spread_over_one_seed_says_so_and_a_missing_mean_stays_empty():
    summary = pd.DataFrame(
        {"method": ["a", "b", "c"], "speedup_mean": [2.0, 1.5, np.nan], "speedup_std": [0.5, np.nan, np.nan]}
    )
    shown = spread_table(summary)
    assert list(shown["speedup_std"].map(str)) == ["0.5", ONE_SEED, "nan"]
    assert "speedup_mean" not in spread_table(summary, {"speedup"}).columns


def test_heads_prints_the_top_heads_and_the_verdict_table(tmp_path, capsys, tiny_folder):
    args = ["heads", "--task", "sst2", "--model", str(tiny_folder), "--n-test", "4", "--seeds", "42"]
    assert cli.main([*args, "--top-k", "1", "--random-draws", "1", "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "top heads by text → label (S_wp)" in out and "top heads by label → target (S_pq)" in out
    assert "causal check" in out and "top_costs_more" in out
    verdicts = re.findall(r"_loyalty .*\] +(yes|no: less|not shown) +4$", out, flags=re.M)
    assert len(verdicts) == 4, out  # 2 flows x 1 k x 2 loyalties, each on 4 inputs
    assert "nan" not in out.lower()


def test_heads_help_explains_the_causal_check(capsys):
    with pytest.raises(SystemExit):
        cli.main(["heads", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "The causal check:" in text and "top_costs_more is 'yes' when that interval lies above 0" in text


def _subcommands(parser):
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return action.choices


def test_every_subcommands_help_starts_with_what_it_does():
    parser = cli.build_parser()
    assert not parser.allow_abbrev
    for name, command in _subcommands(parser).items():
        assert not command.allow_abbrev, name
        first = command.format_help().split("\n\n")[1].strip()
        assert first and first[0].isupper() and not first.startswith("options"), (name, first)
        if name in cli.RUN_COMMANDS:
            assert (
                first.replace("\n", " ").split()
                == (cli.RUN_COMMANDS[name][0].upper() + cli.RUN_COMMANDS[name][1:] + ".").split()
            )


def test_model_and_seed_options_say_their_defaults(capsys):
    from anchorlens.models import DEFAULT_MODEL

    for command in ("saliency", "prompt"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"(default: {DEFAULT_MODEL};" in text
    assert "seed of the demonstrations" in text


def test_task_and_tasks_are_one_option_everywhere():
    parser = cli.build_parser()
    assert parser.parse_args(["reproduce", "--task", "sst2", "trec"]).tasks == ["sst2", "trec"]
    assert parser.parse_args(["reproduce", "--tasks", "sst2"]).tasks == ["sst2"]
    assert parser.parse_args(["auroc", "--tasks", "sst2", "--out", "x"]).task == ["sst2"]


@pytest.mark.parametrize(
    "args",
    [
        ["reproduce", "--n-te", "3"],
        ["auroc", "--task", "sst2", "--out", "x", "--n-te", "3"],
        ["prompt", "--ta", "sst2"],
    ],
)
def test_abbreviated_options_are_refused(capsys, args):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --n-te" in err or "required: --task" in err


def test_a_warning_reaches_the_user_as_one_line(capsys, monkeypatch):
    def warns(args):
        warnings.warn("label word ' x' is two tokens;\n  only the first is used", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "_cmd_tasks", warns)
    assert cli.main(["tasks"]) == 0
    err = capsys.readouterr().err
    assert err == "anchorlens: warning: label word ' x' is two tokens; only the first is used\n"


def test_a_static_format_without_kaleido_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kaleido" else real(name, *a))
    args = ["saliency", "--task", "sst2", "--model", "not-loaded", "--out", str(tmp_path / "o"), "--format", "png"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("anchorlens: error: --format png: writing png figures needs") and "pip install" in err
    assert len(err.strip().splitlines()) == 1
