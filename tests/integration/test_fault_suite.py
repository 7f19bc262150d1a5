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

Here the whole product of faults × readers; tests/unit/test_fault_suite.py runs a seeded sample and holds the
helpers.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import pandas as pd
import pytest

from tests.unit.test_fault_suite import (  # the unit tier's helpers
    EXPERIMENT,
    REPRODUCE_SETTINGS,
    ROOT,
    TASKS,
    Reference,
    _cases,
    build_finished,
    fault_cases,
    judge,
    read_reproduce,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, gpt2_like, llama_like):
    return build_finished(tmp_path_factory, gpt2_like, llama_like)


def test_every_fault_times_every_reader(finished, gpt2_like, tmp_path):
    """The slow tier: the whole product (the count is in docs/bad-input.md)."""
    from collections import Counter

    outcomes: Counter = Counter()
    failures = []
    for fault, reader in _cases(finished):
        try:
            outcomes[judge(fault, reader, gpt2_like, finished, tmp_path)] += 1
        except AssertionError as error:
            failures.append(str(error).splitlines()[0])
    print(f"fault suite: {len(_cases(finished))} cases, outcomes {dict(outcomes)}, {len(failures)} failed")
    assert not failures, "\n".join(failures[:30])


def test_every_fault_of_a_reproduce_folder(tmp_path_factory, tiny_folder, tmp_path):
    """The slow tier: `reproduce` (isolation only, `REPRODUCE_SETTINGS`) into a folder, every fault of its
    ``OUT/isolation`` (and of another run's, with 3 test inputs, as replacements), then `reproduce` again."""
    from collections import Counter

    from anchorlens.experiments import IsolationResult
    from anchorlens.reproduce import ReproduceConfig, reproduce

    root = tmp_path_factory.mktemp("reproduce-faults")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for name, n_test in (("base", REPRODUCE_SETTINGS["n_test"]), ("other-run", 3)):
            config = ReproduceConfig(
                model=str(tiny_folder),
                tasks=TASKS,
                experiments=(EXPERIMENT,),
                **{**REPRODUCE_SETTINGS, "n_test": n_test},
            )
            reproduce(config, root / name, progress=False)
        reference = IsolationResult.from_folder(root / "base" / EXPERIMENT)
    base, others = root / "base" / EXPERIMENT, {"another run": root / "other-run" / EXPERIMENT}
    finished = (base, others, Reference(reference.frame, reference.examples, "", pd.DataFrame()))
    faults = fault_cases(base, others)
    outcomes: Counter = Counter()
    failures = []
    for fault in faults:
        try:
            outcomes[
                judge(fault, "reproduce", str(tiny_folder), finished, tmp_path, {"reproduce": read_reproduce})
            ] += 1
        except AssertionError as error:
            failures.append(str(error).splitlines()[0])
    print(f"reproduce fault suite: {len(faults)} cases, outcomes {dict(outcomes)}, {len(failures)} failed")
    assert not failures, "\n".join(failures[:30])
    from anchorlens.model_classes import default_model_class

    line = "transformer-lens 4.x" if default_model_class() == "bridge" else "transformer-lens 3.9"
    text = (ROOT / "docs" / "bad-input.md").read_text()
    expected = f"{line}: {len(faults)} faults"
    assert expected in text, f"docs/bad-input.md should say: {expected} (of a folder `reproduce` made)"
