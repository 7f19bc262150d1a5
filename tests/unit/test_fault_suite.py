"""The fault suite (issue 31), in the spirit of SQLite's and Git's: a small finished results folder from a tiny
random model, every single-file fault of it × every reader of it. Each case must end in the results of the
untouched folder (read as they are, or recomputed with a warning) or in one clear line (an `AnchorlensError`, a
non-zero exit), and nothing outside the folder may change.

Faults (`fault_cases`): each file truncated at several offsets, a byte zeroed, deleted, duplicated under another
name, replaced by the same file of another run (fewer test inputs) or of another model, replaced by a symbolic
link to an identical copy outside, made read-only; each folder replaced by a symbolic link to a copy outside.
Readers (`READERS`): resuming the experiment into the folder (`run_experiment`), running another experiment into
it, the claims script, and the result readers `from_folder` and `load`. `reproduce` loads its model by name, so its
product is apart (`test_every_fault_of_a_reproduce_folder`): a folder it made with a tiny random GPT-NeoX saved as
a local folder (the `tiny_folder` fixture), every fault of its ``OUT/isolation``, then `reproduce` again.

The fast tier runs a seeded sample; the whole product is in the slow tier (``integration``). docs/bad-input.md
states the count of cases, checked against `fault_cases` here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import random
import re
import shutil
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from anchorlens.errors import AnchorlensError

ROOT = Path(__file__).parents[2]
EXPERIMENT = "isolation"
TASKS = ("sst2",)
SETTINGS = dict(seeds=(1, 2), n_test=4, batch_size=4, k=(1,))
#: The sizes of the `reproduce` product (isolation at its default k, on a 6-layer model: slower per part).
REPRODUCE_SETTINGS = dict(seeds=(1,), n_test=2, batch_size=2)
#: Of the fast tier: this many cases drawn with a fixed seed (about 20 s on one core).
SAMPLE = 16


def _claims_module():
    from anchorlens import claims

    return claims


def _config(**changes):
    from anchorlens.experiments import IsolationConfig

    return IsolationConfig(**{**SETTINGS, **changes})


def _run(model, out, experiment: str = EXPERIMENT, **changes):
    from anchorlens.orchestrate import run_experiment

    if experiment == EXPERIMENT:
        config = _config(**changes)
    else:
        from anchorlens.experiments import SaliencyConfig

        config = SaliencyConfig(seeds=(1,), n_test=2, batch_size=4)
    return run_experiment(experiment, model, list(TASKS), config, out, progress=False, figure=False)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [column for column in ("task", "seed", "k", "condition", "example") if column in frame.columns]
    return frame.sort_values(keys).reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- the faults


@dataclasses.dataclass(frozen=True)
class Fault:
    kind: str
    path: str  # relative to the results folder
    detail: int | str | None = None

    def __str__(self) -> str:
        return f"{self.kind}({self.path}{'' if self.detail is None else f', {self.detail}'})"


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def _folders(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_dir())


def _sibling(folder: Path, relative: str) -> str:
    """Another file of the same kind in the same folder (another seed's part), else a new name beside it."""
    path = Path(relative)
    suffix = "".join(path.suffixes)
    for other in sorted((folder / path.parent).iterdir()):
        if other.name != path.name and "".join(other.suffixes) == suffix and other.is_file():
            return str(path.parent / other.name)
    return str(path.parent / f"{path.name.removesuffix(suffix)}-copy{suffix}")


def fault_cases(base: Path, others: dict[str, Path]) -> list[Fault]:
    """Every single-file (and single-folder) fault of the finished folder `base`; `others` are finished folders
    of another run and another model (name → folder), whose same files replace `base`'s."""
    faults: list[Fault] = []
    for relative in _files(base):
        size = (base / relative).stat().st_size
        for offset in sorted({0, 1, size // 2, size - 1} & set(range(size))):
            faults.append(Fault("truncate", relative, offset))
        if size:
            faults.append(Fault("zero-byte", relative, size // 2))
        faults.append(Fault("delete", relative))
        faults.append(Fault("duplicate", relative, _sibling(base, relative)))
        for name, other in others.items():
            if (other / relative).is_file():
                faults.append(Fault("replace", relative, name))
        faults.append(Fault("symlink", relative))
        faults.append(Fault("read-only", relative))
    for relative in _folders(base):
        faults.append(Fault("folder-symlink", relative))
    return faults


def apply(fault: Fault, out: Path, outside: Path, others: dict[str, Path]) -> None:
    """Do `fault` to the copy `out`; `outside` is a folder beside it that links may point into."""
    target = out / fault.path
    if fault.kind == "truncate":
        target.write_bytes(target.read_bytes()[: int(fault.detail)])
    elif fault.kind == "zero-byte":
        data = bytearray(target.read_bytes())
        data[int(fault.detail)] = 0 if data[int(fault.detail)] else 1  # always a change
        target.write_bytes(bytes(data))
    elif fault.kind == "delete":
        target.unlink()
    elif fault.kind == "duplicate":
        shutil.copyfile(target, out / str(fault.detail))
    elif fault.kind == "replace":
        shutil.copyfile(others[str(fault.detail)] / fault.path, target)
    elif fault.kind == "symlink":
        copy = outside / fault.path.replace("/", "__")
        shutil.copyfile(target, copy)
        target.unlink()
        target.symlink_to(copy)
    elif fault.kind == "read-only":
        target.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    elif fault.kind == "folder-symlink":
        moved = outside / fault.path.replace("/", "__")
        shutil.move(target, moved)
        target.symlink_to(moved, target_is_directory=True)
    else:
        raise AssertionError(fault.kind)


def _snapshot(folder: Path) -> dict[str, str]:
    """Path → sha256 of every file below `folder` (links not followed), or the link's target."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ------------------------------------------------------------------------------------------------ the readers


@dataclasses.dataclass
class Reference:
    """What the untouched folder gives each reader."""

    frame: pd.DataFrame
    examples: pd.DataFrame
    claims: str
    saliency: pd.DataFrame


def _claims_text(folder: Path) -> tuple[int, str, str]:
    claims = _claims_module()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = claims.main([str(folder)])
    return code, out.getvalue().replace(str(folder), "FOLDER"), err.getvalue()


def _same_result(result, reference: Reference) -> None:
    pd.testing.assert_frame_equal(_sorted(result.frame), _sorted(reference.frame), check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(_sorted(result.examples), _sorted(reference.examples), check_dtype=False, rtol=1e-9)


def read_resume(model, out: Path, reference: Reference) -> None:
    _same_result(_run(model, out), reference)


def read_other_experiment(model, out: Path, reference: Reference) -> None:
    result = _run(model, out, experiment="saliency")
    pd.testing.assert_frame_equal(_sorted(result.frame), _sorted(reference.saliency), check_dtype=False, rtol=1e-9)


def read_from_folder(model, out: Path, reference: Reference) -> None:
    from anchorlens.experiments import IsolationResult

    _same_result(IsolationResult.from_folder(out), reference)


def read_load(model, out: Path, reference: Reference) -> None:
    from anchorlens.experiments import IsolationResult

    _same_result(IsolationResult.load(out), reference)


def read_reproduce(model, out: Path, reference: Reference) -> None:
    from anchorlens.experiments import IsolationResult
    from anchorlens.reproduce import ReproduceConfig, reproduce

    config = ReproduceConfig(model=model, tasks=TASKS, experiments=(EXPERIMENT,), **REPRODUCE_SETTINGS)
    with contextlib.redirect_stdout(io.StringIO()):
        reproduce(config, out.parent, progress=False)
    _same_result(IsolationResult.from_folder(out), reference)


def read_claims(model, out: Path, reference: Reference) -> None:
    code, text, err = _claims_text(out)
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("claims.py: error: "), err
        raise _Refused(lines[0])
    assert text == reference.claims


class _Refused(AnchorlensError):
    """The claims script's one-line refusal, raised to count as a refusal."""


READERS: dict[str, Callable] = {
    "resume": read_resume,
    "another experiment": read_other_experiment,
    "claims": read_claims,
    "from_folder": read_from_folder,
    "load": read_load,
}


# ------------------------------------------------------------------------------------------------ the fixture


def build_finished(tmp_path_factory, gpt2_like, llama_like):
    """(folders, reference): the finished folder, another run's (3 test inputs) and another model's."""
    root = tmp_path_factory.mktemp("fault-suite")
    base = root / "base"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run(gpt2_like, base)
        others = {"another run": root / "other-run", "another model": root / "other-model"}
        _run(gpt2_like, others["another run"], n_test=3)
        _run(llama_like, others["another model"])
        from anchorlens.experiments import IsolationResult

        result = IsolationResult.from_folder(base)
        saliency_folder = root / "saliency"
        shutil.copytree(base, saliency_folder)
        saliency = _run(gpt2_like, saliency_folder, experiment="saliency").frame
        code, text, err = _claims_text(base)
    assert code == 0, err
    return base, others, Reference(result.frame, result.examples, text, saliency)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, gpt2_like, llama_like):
    return build_finished(tmp_path_factory, gpt2_like, llama_like)


def judge(fault: Fault, reader: str, model, finished, tmp_path, readers: dict[str, Callable] = READERS) -> str:
    """Run one case; returns "identical", "recomputed" (with a warning) or "refused" (one line), or fails."""
    base, others, reference = finished
    case = tmp_path / f"case-{abs(hash((str(fault), reader)))}"
    out, outside = case / "root" / EXPERIMENT, case / "outside"  # root: `reproduce`'s --out
    shutil.copytree(base, out, symlinks=True)
    outside.mkdir(parents=True)
    apply(fault, out, outside, others)
    watched = {**_snapshot(outside), **{k: v for other in others.values() for k, v in _snapshot(other).items()}}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                readers[reader](model, out, reference)
            except AnchorlensError as error:
                assert "\n" not in str(error).strip(), f"{fault} × {reader}: a refusal of more than one line"
                outcome = "refused"
            else:
                warned = [w for w in caught if "recomput" in str(w.message)]
                outcome = "recomputed" if warned else "identical"
    except AssertionError as error:
        raise AssertionError(f"{fault} × {reader}: {error}") from None
    except Exception as error:  # a traceback a user would see
        raise AssertionError(f"{fault} × {reader}: {type(error).__name__}: {error}") from error
    after = {**_snapshot(outside), **{k: v for other in others.values() for k, v in _snapshot(other).items()}}
    assert after == watched, f"{fault} × {reader}: wrote outside the results folder"
    for path in out.rglob("*"):  # let pytest clean up read-only files
        if path.is_file() and not path.is_symlink():
            path.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
    return outcome


def _cases(finished) -> list[tuple[Fault, str]]:
    base, others, _ = finished
    return [(fault, reader) for fault in fault_cases(base, others) for reader in READERS]


def test_a_seeded_sample_of_faults_times_readers(finished, gpt2_like, tmp_path):
    """The fast tier: `SAMPLE` cases drawn with a fixed seed from the full product."""
    cases = random.Random(31).sample(_cases(finished), SAMPLE)
    outcomes = [judge(fault, reader, gpt2_like, finished, tmp_path) for fault, reader in cases]
    assert set(outcomes) <= {"identical", "recomputed", "refused"}


def test_the_docs_state_the_count_of_cases(finished):
    """docs/bad-input.md states the count this suite tries (regenerate the sentence if a fault or reader is
    added: `python -m pytest tests/unit/test_fault_suite.py -k count` prints the expected text)."""
    base, others, _ = finished
    faults = fault_cases(base, others)
    # The files' sizes, and so the distinct truncation offsets, differ between the model classes: the docs give
    # the count of each TransformerLens line, and the installed line's must match.
    from anchorlens.model_classes import default_model_class

    line = "transformer-lens 4.x" if default_model_class() == "bridge" else "transformer-lens 3.9"
    expected = f"{line}: {len(faults)} faults × {len(READERS)} readers = {len(faults) * len(READERS)} cases"
    text = (ROOT / "docs" / "bad-input.md").read_text()
    found = re.search(re.escape(line) + r": \d+ faults × \d+ readers = \d+ cases", text)
    assert found is not None and found.group(0) == expected, f"docs/bad-input.md should say: {expected}"


# ------------------------------------------------------------------------ the reproducers on this folder


def _copy(base: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(base, out, symlinks=True)
    return out


def test_a_truncated_summary_is_recomputed_not_judged(finished, tmp_path):
    """Issue 31 item 1: a summary cut to half its size changed a verdict, without a warning."""
    base, _, reference = finished
    out = _copy(base, tmp_path)
    summary = out / f"{EXPERIMENT}_summary.csv"
    summary.write_bytes(summary.read_bytes()[: summary.stat().st_size // 2])
    with pytest.warns(UserWarning, match="isolation_summary.csv does not match its recorded sha256.*recomputed"):
        code, text, _ = _claims_text(out)
    assert code == 0 and text == reference.claims
    assert summary.stat().st_size < (base / summary.name).stat().st_size  # read-only reader: nothing rewritten


@pytest.mark.parametrize("other", ["another run", "another model"])
def test_per_example_rows_of_another_run_or_model_are_not_judged(finished, tmp_path, other):
    """Issue 31 items 2 and 6: another run's ``isolation_examples.parquet`` (fewer test inputs) was judged
    silently; another model's ended in ``ValueError: ... duplicate entries``."""
    base, others, reference = finished
    out = _copy(base, tmp_path)
    name = f"{EXPERIMENT}_examples.parquet"
    shutil.copyfile(others[other] / name, out / name)
    with pytest.warns(UserWarning, match=f"{name} does not match its recorded sha256"):
        code, text, err = _claims_text(out)
    assert code == 0 and text == reference.claims, err


def test_a_part_copied_under_another_seeds_name_is_recomputed_before_any_table_is_written(
    finished, gpt2_like, tmp_path
):
    """Issue 31 item 7: ``sst2-seed1.*`` copied over ``sst2-seed2.*``, then a resume: the table held seed 1
    twice and the summary ended in ValueError. The part is damaged and recomputed."""
    base, _, reference = finished
    out = _copy(base, tmp_path)
    parts = out / "parts" / EXPERIMENT
    for suffix in (".csv", ".examples.parquet", ".json"):
        shutil.copyfile(parts / f"sst2-seed1{suffix}", parts / f"sst2-seed2{suffix}")
    with pytest.warns(UserWarning, match="sst2-seed2 is damaged: its record is of"):
        result = _run(gpt2_like, out)
    _same_result(result, reference)
    assert sorted(pd.read_csv(out / f"{EXPERIMENT}.csv")["seed"].unique()) == [1, 2]
