"""The command line: `anchorlens prompt --json` on all tasks and both offline tokenizers, and error exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from anchorlens.cli import main


@pytest.mark.parametrize("model", ["smollm2-135m", "gemma-3-270m"])
@pytest.mark.parametrize("task", ["sst2", "agnews", "trec", "emoc"])
def test_prompt_json(capsys, task, model):
    assert main(["prompt", "--task", task, "--model", model, "--seed", "42", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    tokens = view["tokens"]
    assert tokens[view["target_position"]] == ":" and view["target_position"] == len(tokens) - 1
    for name, positions in view["label_positions"].items():
        assert [tokens[p] for p in positions] == [view["label_tokens"][name]]
    if task == "sst2":
        assert view["demonstration_rows"] == [66730, 29890] and view["query_row"] == 726
    if task == "trec":
        assert view["demonstration_rows"] == [3408, 371, 453, 4457, 5315, 168] and view["query_row"] == 473
    assert (tokens[0] == "<bos>") == (model == "gemma-3-270m")
    assert view["example_index"] == view["query_row"]  # the prompt carries its query's row (was null)


def test_listings(capsys):
    assert main(["tasks"]) == 0
    assert "Abbreviation" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert names == ["smollm2-135m", "gemma-3-270m"]


def test_bad_input_exits_non_zero_with_one_line_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "anchorlens.cli", "prompt", "--task", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unknown task 'nope'" in result.stderr and "sst2" in result.stderr


@pytest.mark.integration
def test_auroc_command_writes_tables_and_resumes(tmp_path, capsys):
    out = tmp_path / "not" / "there" / "yet"
    args = [
        "auroc",
        "--task",
        "sst2",
        "--model",
        "smollm2-135m",
        "--n-test",
        "4",
        "--seeds",
        "42",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    frame = pd.read_csv(out / "auroc.csv")
    assert {"task", "seed", "layer", "auroc", "R"} <= set(frame.columns) and len(frame) == 30
    assert (out / "auroc.html").is_file() and (out / "auroc.parquet").is_file()
    part = out / "parts" / "auroc" / "sst2-seed42.csv"
    stamp = part.stat().st_mtime_ns
    assert main(args) == 0  # resumes: the finished part is not recomputed
    assert part.stat().st_mtime_ns == stamp
    changed = [a if a != "4" else "5" for a in args]
    assert main(changed) == 2
    assert "other settings (n_test differ)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args,message",
    [
        (["saliency", "--task", "sst2", "--n-test", "0", "--out", "x"], "n_test must be at least 1"),
        (["isolation", "--task", "nope", "--out", "x"], "unknown task 'nope'"),
        (["auroc", "--task", "sst2", "--model", "not-a-model", "--out", "x"], "unknown model 'not-a-model'"),
    ],
)
def test_experiment_commands_reject_bad_input(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------ bad input caught before (or instead of) a traceback


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("anchorlens: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("index", ["872", "-1"])
def test_prompt_index_out_of_range_is_one_line(capsys, index):
    """Issue 17.6: --index 872 on SST-2's 872 test rows was an IndexError traceback."""
    assert main(["prompt", "--task", "sst2", "--index", index]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert (
        f"--index {index} is out of range: task 'sst2' has 872 test inputs (its 'validation' split); use --index 0..871"
    ) in line


@pytest.fixture
def short_context_folder(tmp_path, smol_tokenizer):
    """A local model folder whose config.json states a 128-token context (only its tokenizer is ever loaded)."""
    smol_tokenizer.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "max_position_embeddings": 128, "vocab_size": len(smol_tokenizer)})
    )
    return tmp_path


def test_prompt_longer_than_the_context_warns(capsys, short_context_folder):
    """Issue 17.6: `prompt --shots 400` printed a prompt twice the model's context without a word."""
    assert main(["prompt", "--task", "sst2", "--model", str(short_context_folder), "--shots", "4", "--json"]) == 0
    captured = capsys.readouterr()
    view = json.loads(captured.out)
    assert len(view["tokens"]) > 128
    expected = (
        f"this prompt is {len(view['tokens'])} tokens, longer than the 128-token context of {short_context_folder}"
    )
    assert any(note.startswith(expected) and note.endswith("use fewer --shots (now 4)") for note in view["warnings"])
    assert f"anchorlens: warning: {expected}" in captured.err
    assert main(["prompt", "--task", "sst2", "--model", str(short_context_folder), "--shots", "1", "--json"]) == 0
    assert "context" not in capsys.readouterr().err  # a prompt that fits: no warning


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Issue 17.6: each was a traceback, most after the model had loaded
        (["auroc", "--device", "cuda"], "device 'cuda' needs a CUDA GPU and torch finds none"),
        (["auroc", "--device", "gpu"], "unknown device 'gpu'; name a torch device such as 'cpu', 'cuda'"),
        (["reproduce", "--device", "cuda:1"], "device 'cuda:1' needs a CUDA GPU"),
        (
            ["isolation", "--model", "smollm2-135m", "--word-top-k", "1000000"],
            "--word-top-k 1000000 is more than the 49152 tokens of smollm2-135m's vocabulary; use at most 49152",
        ),
        (
            ["compress", "--word-top-k", "300000"],
            "--word-top-k 300000 is more than the 262144 tokens of gemma-3-270m's",
        ),
        (["compress", "--word-top-k", "0"], "--word-top-k must be at least 1"),
    ],
)
def test_settings_the_machine_or_model_cannot_run_are_one_line(tmp_path, capsys, no_cuda, args, message):
    tasks = [] if args[0] == "reproduce" else ["--task", "sst2"]
    assert main([*args, *tasks, "--n-test", "1", "--seeds", "42", "--out", str(tmp_path / "out")]) == 2
    assert message in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_folder_that_is_not_a_model_is_one_line(tmp_path, capsys):
    """Issue 17.6: a local folder that is not a model was a ValueError traceback from transformers."""
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["auroc", "--task", "sst2", "--model", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{tmp_path} is a folder but holds no Hugging Face model (no config.json)" in line
    assert main(["prompt", "--task", "sst2", "--model", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder but no tokenizer loads from it" in _one_error_line(capsys.readouterr().err)


def test_an_unusable_model_cache_is_one_line(tmp_path):
    """Issue 17.3: a cache that cannot be written was a NotADirectoryError / PermissionError traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, "ANCHORLENS_CACHE": str(blocker / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "anchorlens.cli", "prompt", "--task", "sst2"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 2
    assert "it lies below a file; set ANCHORLENS_CACHE to a writable folder" in _one_error_line(result.stderr)


# ------------------------------------------------------------------ options generated from the config classes


def _run_config_classes():
    from anchorlens.orchestrate import EXPERIMENTS
    from anchorlens.reproduce import ReproduceConfig

    return {**{name: spec.config_class for name, spec in EXPERIMENTS.items()}, "reproduce": ReproduceConfig}


def test_the_run_commands_are_the_registered_experiments():
    from anchorlens.cli import RUN_COMMANDS
    from anchorlens.orchestrate import EXPERIMENTS

    assert list(RUN_COMMANDS) == list(EXPERIMENTS)


@pytest.mark.parametrize("command", ["saliency", "isolation", "auroc", "diagnose", "reweight", "compress", "reproduce"])
def test_options_left_out_give_the_configs_own_defaults(command):
    """One source for each default: the option's default is the config field's, so omitting every option gives
    the config made with no arguments (CLI defaults used to be written a second time in cli.py)."""
    import dataclasses

    from anchorlens.cli import build_parser, config_values

    config_class = _run_config_classes()[command]
    argv = [command] if command == "reproduce" else [command, "--task", "sst2", "--out", "x"]
    args = build_parser({command}).parse_args(argv)
    values = config_values(args, config_class)
    assert values  # every run command has options from its config
    assert dataclasses.asdict(config_class(**values)) == dataclasses.asdict(config_class())


@pytest.mark.parametrize("command", ["saliency", "isolation", "auroc", "diagnose", "reweight", "compress", "reproduce"])
def test_help_shows_every_config_option_with_its_help_and_default(command, capsys):
    import dataclasses

    from anchorlens.experiments.common import cli_flag

    with pytest.raises(SystemExit):
        main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for field in dataclasses.fields(_run_config_classes()[command]):
        assert field.metadata.get("help"), f"{field.name} has no help text"
        flag = cli_flag(field)
        if flag is not None:
            words = " ".join(field.metadata["help"].split())
            assert f"{flag} " in shown and words in shown and "(default: " in shown.split(words, 1)[1][:12], field.name


def test_generated_options_parse_tuples_switches_and_choices(capsys):
    from anchorlens.cli import build_parser, config_values
    from anchorlens.experiments import IsolationConfig, ReweightConfig, SaliencyConfig

    base = ["--task", "sst2", "--out", "x"]
    args = build_parser({"isolation"}).parse_args(["isolation", *base, "--k", "1", "5", "--shots", "2"])
    assert IsolationConfig(**config_values(args, IsolationConfig)).k == (1, 5)
    assert config_values(args, IsolationConfig)["shots_per_class"] == 2
    args = build_parser({"saliency"}).parse_args(["saliency", *base, "--abs-per-head"])
    assert SaliencyConfig(**config_values(args, SaliencyConfig)).abs_per_head is True
    args = build_parser({"reweight"}).parse_args(["reweight", *base, "--variant", "scores"])
    assert ReweightConfig(**config_values(args, ReweightConfig)).variant == "scores"
    with pytest.raises(SystemExit):
        build_parser({"reweight"}).parse_args(["reweight", *base, "--variant", "softmax"])
    assert "invalid choice: 'softmax'" in capsys.readouterr().err
