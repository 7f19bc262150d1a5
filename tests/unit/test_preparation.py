"""One run preparation: from the command line or a Python ``run_*`` call to an experiment's per-seed function,
each check (task, folder, model name, hooks) runs once."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

import anchorlens as al
from anchorlens import preparation
from anchorlens.cli import main
from anchorlens.experiments.common import ExperimentConfig
from anchorlens.hooks import verify_attention_hooks
from anchorlens.models import expected_recorded_name
from anchorlens.runs import check_folder
from anchorlens.tasks import get_task

#: The checks counted, by what they check, and the package function that makes each.
CHECKS = {
    "task": get_task,
    "folder": check_folder,
    "model name before loading": expected_recorded_name,
    "hooks": verify_attention_hooks,
}


#: The folder checks that are not the run's preparation: the check under the part's lock, at the moment a part
#: is written (another process may have claimed the folder since the run was prepared), and reading a finished
#: folder back (its combined tables are made from the parts, checked against the folder's own manifest).
AFTER_THE_RUN = {"write_part", "read_parts"}


def _after_the_run(frame) -> bool:
    """Whether a folder check is one of `AFTER_THE_RUN`: called there, or by the `ResultStore` made there (the
    frames of runtime type checkers' wrappers in between are passed over)."""
    package = str(Path(al.__file__).parent)
    while frame is not None:
        inside = frame.f_code.co_filename.startswith(package)
        if inside and frame.f_code.co_name != "__init__":
            return frame.f_code.co_name in AFTER_THE_RUN
        frame = frame.f_back
    return False


@pytest.fixture
def counted(monkeypatch):
    """Every package module's reference to a check function replaced by a counting one (a task is counted when
    it is resolved from its name; a `Task` passing through is no check), and `ExperimentConfig.for_model` (the
    model name checked against the loaded model) counted too."""
    import anchorlens.orchestrate  # noqa: F401  (the modules of the path, loaded so that their names are replaced)
    import anchorlens.reproduce  # noqa: F401

    counts: Counter[str] = Counter()

    def counting(what, function):
        def check(*args, **kwargs):
            if what == "folder" and _after_the_run(sys._getframe(1)):
                return function(*args, **kwargs)
            if what != "task" or isinstance(args[0], str):
                counts[what] += 1
            return function(*args, **kwargs)

        return check

    for what, function in CHECKS.items():
        replacement = counting(what, function)
        for name, module in list(sys.modules.items()):
            if name.startswith("anchorlens") and getattr(module, function.__name__, None) is function:
                monkeypatch.setattr(module, function.__name__, replacement)
    for_model = ExperimentConfig.for_model

    def counted_for_model(self, model):
        counts["model name of the loaded model"] += 1
        return for_model(self, model)

    monkeypatch.setattr(ExperimentConfig, "for_model", counted_for_model)
    return counts


def test_the_command_line_checks_each_thing_once(counted, tmp_path, tiny_folder, capsys):
    args = ["auroc", "--task", "sst2", "--model", str(tiny_folder), "--n-test", "2", "--seeds", "1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert dict(counted) == {
        "task": 1,
        "folder": 1,
        "model name before loading": 1,
        "model name of the loaded model": 1,
        "hooks": 1,
    }


def test_a_python_run_checks_each_thing_once(counted, tmp_path, gpt2_like):
    result = al.run_auroc(gpt2_like, "sst2", al.AurocConfig(n_test=2, seeds=(1,)), out=tmp_path, progress=False)
    assert set(result.to_frame()["seed"]) == {1}
    # a loaded model: its name is checked once, against the config; no name is guessed before loading
    assert dict(counted) == {"task": 1, "folder": 1, "model name of the loaded model": 1, "hooks": 1}


def test_the_counting_sees_a_check_made_twice(counted, gpt2_like):
    verify_attention_hooks_in_package = preparation.verify_attention_hooks
    verify_attention_hooks_in_package(gpt2_like)
    verify_attention_hooks_in_package(gpt2_like)
    preparation.get_task("sst2")
    assert counted["hooks"] == 2 and counted["task"] == 1
