"""analyses/coverage.py: the coverage study of the summaries' intervals runs on the package's own interval
function, and the docs page holds its full table with every cell in [93%, 98%]."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

import anchorlens.stats

ROOT = Path(__file__).parents[2]
PAGE = ROOT / "docs" / "coverage.md"
TABLE = ROOT / "docs" / "results" / "coverage.json"


def load(name: str):
    sys.path.insert(0, str(ROOT / "analyses"))  # coverage.py imports claims.py beside it
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "analyses" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "analyses"))


coverage = load("coverage")


def test_a_small_study_has_every_cell_and_uses_the_packages_interval(tmp_path, monkeypatch, capsys):
    calls = []
    original = anchorlens.stats.seed_interval

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(anchorlens.stats, "seed_interval", counted)
    out = tmp_path / "cells.json"
    assert coverage.main(["--repetitions", "12", "--inputs", "40", "--json", str(out)]) == 0
    cells = json.loads(out.read_text())["cells"]
    frame = pd.DataFrame(cells)
    assert len(frame) == len(coverage.OUTCOMES) * len(coverage.SEEDS) * len(coverage.RATIOS)
    assert set(frame["outcome"]) == {"binary", "continuous", "paired", "average"}
    assert set(frame["n_seeds"]) == {3, 5} and set(frame["ratio"]) == {0, 0.5, 1, 2, 3, 5}
    assert frame["coverage"].between(0, 100).all() and (frame["repetitions"] == 12).all()
    # every repetition of every cell is one call of the interval (the average's calls it once too)
    assert len(calls) == len(frame) * 12
    printed = capsys.readouterr().out
    assert "| outcome | seeds | 0 | 0.5 | 1 | 2 | 3 | 5 |" in printed and "| average | 5 |" in printed


def test_the_simulated_truth_is_the_mean_it_claims():
    """The binary seed rates have the spread they are asked for and the mean the study takes as true."""
    import numpy as np

    rates = coverage.SeedRates(0.7, 0.1)
    draws = rates.draw(np.random.default_rng(0), (200_000,))
    assert abs(draws.std() - 0.1) < 0.002 and abs(draws.mean() - rates.true_mean) < 0.002
    rows, truth = coverage.simulate("paired", 3, 0.0, 50, 2, np.random.default_rng(1))
    assert set(rows["value"].unique()) <= {-1.0, 0.0, 1.0} and abs(truth - 0.1) < 1e-9
    with pytest.raises(ValueError, match="more than rates around 0.7 can have"):
        coverage.SeedRates(0.7, 0.6).draw(np.random.default_rng(0), (1,))


def test_the_docs_page_holds_the_full_table_every_cell_within_bounds():
    cells = json.loads(TABLE.read_text())
    frame = pd.DataFrame(cells["cells"])
    assert len(frame) == 48 and (frame["repetitions"] >= 2000).all()
    assert frame["coverage"].between(coverage.LOWEST, coverage.HIGHEST).all(), frame.sort_values("coverage")
    block = coverage.table(cells["cells"], cells["command"])
    start, end = "<!-- coverage:start -->", "<!-- coverage:end -->"
    text = PAGE.read_text()
    assert text[text.index(start) + len(start) : text.index(end)].strip("\n") == block.strip("\n")
