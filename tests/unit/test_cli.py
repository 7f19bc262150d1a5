"""The command line: `anchorlens prompt --json` on all tasks (SmolLM2-135M's tokenizer; Gemma-3's in
tests/integration/test_cli.py), listings, generated options and error exits."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from anchorlens.cli import RUN_COMMANDS, main


# Gemma-3-270m's tokenizer (read from its GGUF in each fresh process) in tests/integration/test_cli.py.
@pytest.mark.parametrize("model", ["smollm2-135m"])
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


# ------------------------------------------------------------------ --dtype (issue 14.5)

#: Each experiment's signature at its defaults (n_test 200, as the committed results), taken from the code before
#: the dtype setting existed: a float32 config must keep it, or the committed parts in docs/results stop resuming.
SIGNATURES_BEFORE_DTYPE = {
    "auroc": {"model": "smollm2-135m", "n_test": 200, "shots_per_class": 1},
    "compress": {"model": "smollm2-135m", "n_test": 200, "random_draws": 20, "shots_per_class": 1, "word_top_k": 5},
    "diagnose": {
        "layer": None,
        "min_per_class": 30,
        "model": "smollm2-135m",
        "n_components": 10,
        "n_test": 200,
        "shots_per_class": 1,
    },
    "heads": {
        "model": "smollm2-135m",
        "n_test": 200,
        "random_draws": 3,
        "shots_per_class": 1,
        "top_k": (1, 5, 10),
        "word_top_k": 5,
    },
    "isolation": {"k": (1, 3, 5, 7), "model": "smollm2-135m", "n_test": 200, "shots_per_class": 1, "word_top_k": 5},
    "reweight": {
        "calibration_inputs": ("N/A", "", "[MASK]"),
        "epochs": 10,
        "extra_per_class": 4,
        "five_shot_agnews": 3,
        "learning_rate": 0.01,
        "model": "smollm2-135m",
        "n_test": 200,
        "prefix_cache": True,
        "shots_per_class": 1,
        "variant": "pattern",
    },
    "saliency": {"abs_per_head": False, "model": "smollm2-135m", "n_test": 200, "shots_per_class": 1},
}


@pytest.mark.parametrize("experiment", sorted(SIGNATURES_BEFORE_DTYPE))
def test_a_float32_config_keeps_the_signature_it_had_before_dtype_existed(experiment):
    from anchorlens.orchestrate import EXPERIMENTS

    config_class = EXPERIMENTS[experiment].config_class
    before = SIGNATURES_BEFORE_DTYPE[experiment]
    assert config_class(model="smollm2-135m").signature() == before
    assert config_class(model="smollm2-135m", dtype="float32").signature() == before
    assert config_class(model="smollm2-135m", dtype="bfloat16").signature() == {**before, "dtype": "bfloat16"}


def test_the_committed_results_still_resume():
    """Every experiment in the committed results folders: its signature is that of a default config (float32),
    or in a second folder beside the default one (``gemma-3-270m-exclude-bos``) that of its own settings, and the
    folder accepts it (`check_folder` reads only)."""
    from pathlib import Path

    from anchorlens.orchestrate import EXPERIMENTS
    from anchorlens.runs import RESULTS_FORMAT_VERSION, check_folder

    manifests = sorted(Path(__file__).parents[2].glob("docs/results/*/manifest.json"))
    checked = 0
    for path in manifests:
        manifest = json.loads(path.read_text())
        if manifest.get("results_format") != RESULTS_FORMAT_VERSION:
            continue
        for experiment, signature in manifest["experiments"].items():
            config_class = EXPERIMENTS[experiment].config_class
            assert config_class.from_signature(signature).dtype == "float32"
            if path.parent.name == signature["model"]:  # the model's own folder: the default settings
                config = config_class(model=signature["model"], n_test=signature["n_test"])
            else:
                assert path.parent.name.startswith(f"{signature['model']}-"), path  # named after its model
                config = config_class.from_signature(signature)
            assert json.loads(json.dumps(config.signature())) == signature, (path, experiment)
            check_folder(path.parent, experiment, config.signature())
            checked += 1
    assert checked, "no committed results of this format to check"


def test_a_bfloat16_run_into_a_float32_folder_is_refused_by_name(tmp_path, llama_like):
    """Issue 14.5: results made in one dtype never resume or mix with another's in one --out folder; the error
    names both dtypes and the fix."""
    import copy

    import torch

    from anchorlens.errors import AnchorlensError
    from anchorlens.experiments import AurocConfig
    from anchorlens.orchestrate import run_experiment

    small = {"seeds": (1,), "n_test": 2, "batch_size": 2}
    run_experiment("auroc", llama_like, ["sst2"], AurocConfig(**small), tmp_path / "f32", progress=False)
    record = json.loads((tmp_path / "f32" / "parts" / "auroc" / "sst2-seed1.json").read_text())
    assert record["dtype"] == "float32" and "dtype" not in record["signature"]

    half = copy.deepcopy(llama_like).to(torch.bfloat16)
    with pytest.raises(AnchorlensError) as refused:
        run_experiment("auroc", half, ["sst2"], AurocConfig(**small, dtype="bfloat16"), tmp_path / "f32")
    assert (
        f"{tmp_path / 'f32'} holds results computed in float32, and this run is in bfloat16; results of two dtypes "
        "are never mixed in one folder: rerun with --dtype float32"
    ) in str(refused.value)
    # a config that does not say the model's dtype is refused before any folder is read
    with pytest.raises(AnchorlensError, match=r"the config says dtype 'float32', but the model passed runs in "):
        run_experiment("auroc", half, ["sst2"], AurocConfig(**small), tmp_path / "other")
    assert not (tmp_path / "other").exists()

    result = run_experiment("auroc", half, ["sst2"], AurocConfig(**small, dtype="bfloat16"), tmp_path / "bf16")
    assert result.config.dtype == "bfloat16"
    manifest = json.loads((tmp_path / "bf16" / "manifest.json").read_text())
    assert manifest["experiments"]["auroc"]["dtype"] == "bfloat16"
    record = json.loads((tmp_path / "bf16" / "parts" / "auroc" / "sst2-seed1.json").read_text())
    assert record["dtype"] == "bfloat16" and record["signature"]["dtype"] == "bfloat16"
    # and the other way round: float32 into the bfloat16 folder
    with pytest.raises(AnchorlensError, match="holds results computed in bfloat16, and this run is in float32"):
        run_experiment("auroc", llama_like, ["sst2"], AurocConfig(**small), tmp_path / "bf16")


def test_the_cli_refuses_another_dtype_in_the_folder_before_loading(tmp_path, capsys, tiny_folder):
    out = tmp_path / "out"
    args = ["auroc", "--task", "sst2", "--model", str(tiny_folder), "--n-test", "2", "--seeds", "1"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(out), "--no-progress", "--dtype", "bfloat16"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "holds results computed in float32, and this run is in bfloat16" in line
    assert "rerun with --dtype float32 (Python: dtype='float32') to resume, or choose another --out" in line


@pytest.mark.parametrize("command", [*RUN_COMMANDS, "reproduce"])
def test_every_run_command_takes_a_dtype(command, capsys):
    from anchorlens.cli import build_parser

    base = [] if command == "reproduce" else ["--task", "sst2", "--out", "x"]
    args = build_parser({command}).parse_args([command, *base, "--dtype", "bfloat16"])
    assert args.dtype == "bfloat16"
    assert build_parser({command}).parse_args([command, *base]).dtype == "float32"
    with pytest.raises(SystemExit):
        build_parser({command}).parse_args([command, *base, "--dtype", "float64"])
    err = capsys.readouterr().err.replace("'", "")  # Python 3.12 quotes the choices, 3.11 does not
    assert "argument --dtype: invalid choice: float64 (choose from float32, bfloat16, float16)" in err


def test_reproduce_help_states_defaults_sizes_and_the_measured_time(capsys):
    from anchorlens.models import DEFAULT_MODEL

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        f"Defaults (the main job, a smoke size): model {DEFAULT_MODEL} in float32; tasks sst2 agnews trec emoc; "
        "seeds 42; 20 test" in shown
    )
    assert "experiments saliency isolation auroc diagnose reweight compress, lighter where listed (" in shown
    assert "isolation k 5 (full: 1 3 5 7)" in shown and "--full runs the full settings" in shown
    assert ": 4 (task, seed) parts per experiment, 24 in all" in shown
    assert "The paper's size: --seeds 42 43 44 45 46 --n-test 1000 --full" in shown
    from anchorlens.reproduce import measured_main_job

    measured = measured_main_job()
    if measured is None:
        assert "Expected time: not measured yet." in shown
    else:
        assert f"the default job took {measured['seconds']:.0f} s" in shown and f"(commit {measured['commit']}" in shown
    assert "prints each finished part and the expected remaining time" in shown


@pytest.mark.bad_input  # a dtype outside the Literal, on purpose
def test_an_unknown_dtype_is_refused_in_python():
    from anchorlens.errors import InvalidConfigError
    from anchorlens.experiments import IsolationConfig
    from anchorlens.reproduce import ReproduceConfig

    for config_class in (IsolationConfig, ReproduceConfig):
        with pytest.raises(InvalidConfigError, match=r"unknown dtype 'fp16'; use one of float32, bfloat16, float16"):
            config_class(dtype="fp16")


def test_a_model_in_a_dtype_experiments_do_not_run_is_refused(gpt2_like):
    import copy

    import torch

    from anchorlens.errors import InvalidConfigError
    from anchorlens.experiments import AurocConfig

    double = copy.deepcopy(gpt2_like).to(torch.float64)
    with pytest.raises(
        InvalidConfigError, match=r"runs in float64, and experiments run in float32, bfloat16, float16; "
    ):
        AurocConfig().for_model(double)


# ------------------------------------------------------------------ issue 31: refusals before the first write


def test_a_closed_pipe_ends_the_command_quietly():
    """Issue 31 item 9: ``anchorlens prompt ... --json | head -c 300`` ended in a BrokenPipeError traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "anchorlens.cli", "tasks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # the reader goes away before the command writes
    err = process.stderr.read().decode()
    process.wait()
    assert process.returncode == 141 and err == ""


def test_an_empty_out_is_refused_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    """Issue 31 item 13: ``--out ""`` wrote into the current folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["auroc", "--task", "sst2", "--n-test", "2", "--seeds", "1", "--out", ""]) == 2
    assert "the output folder is an empty path" in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def _copy_folder(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_a_local_model_folder_edited_between_runs_is_refused(tmp_path, capsys, tiny_folder):
    """Issue 31 item 4: a run with ``--model ./m`` into ``lf``, then ``m/config.json`` edited to fewer layers and a
    resume with another seed into ``lf``, put seeds of a 6-layer and a 4-layer model in one table."""
    model = _copy_folder(tiny_folder, tmp_path / "m")
    out = tmp_path / "lf"
    args = ["auroc", "--task", "sst2", "--model", str(model), "--n-test", "2", "--out", str(out), "--no-progress"]
    assert main([*args, "--seeds", "1"]) == 0
    capsys.readouterr()
    original = (model / "config.json").read_text()
    (model / "config.json").write_text(json.dumps({**json.loads(original), "num_hidden_layers": 4}))
    before = sorted(str(path) for path in out.rglob("*"))
    assert main([*args, "--seeds", "2"]) == 2
    assert "made with other settings (model_files differ)" in _one_error_line(capsys.readouterr().err)
    assert sorted(str(path) for path in out.rglob("*")) == before
    (model / "config.json").write_text(original)  # restored: the same files resume
    assert main([*args, "--seeds", "1"]) == 0


def test_a_link_or_a_deleted_manifest_is_refused_before_the_model_loads(tmp_path, capsys, tiny_folder):
    """Issue 31 items 10 and 12 on the command line: a folder link inside --out, and a run of another model (the
    same weights in another folder) into a folder whose manifest was deleted, are refused with one line before
    anything is written."""
    import shutil

    out, elsewhere, other = tmp_path / "O", tmp_path / "elsewhere", tmp_path / "other-model"
    shutil.copytree(tiny_folder, other)
    args = ["auroc", "--task", "sst2", "--model", str(tiny_folder), "--n-test", "2", "--out", str(out), "--no-progress"]
    assert main([*args, "--seeds", "1"]) == 0
    capsys.readouterr()
    (out / "manifest.json").unlink()
    before = sorted(str(path) for path in out.rglob("*"))
    other_args = [*args[: args.index("--model") + 1], str(other), *args[args.index("--model") + 2 :]]
    assert main([*other_args, "--seeds", "44"]) == 2
    assert "holds results of model" in _one_error_line(capsys.readouterr().err)
    assert sorted(str(path) for path in out.rglob("*")) == before
    elsewhere.mkdir()
    (out / "parts" / "auroc").rename(elsewhere / "auroc")
    (out / "parts" / "auroc").symlink_to(elsewhere / "auroc", target_is_directory=True)
    linked = sorted(path.name for path in (elsewhere / "auroc").iterdir())
    assert main([*args, "--seeds", "1", "2"]) == 2
    assert "parts/auroc is a symbolic link" in _one_error_line(capsys.readouterr().err)
    assert sorted(path.name for path in (elsewhere / "auroc").iterdir()) == linked
