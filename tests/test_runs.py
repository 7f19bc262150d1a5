"""Result folders: settings mismatches and foreign formats are refused, parts are whole files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from anchorlens.errors import InvalidConfigError
from anchorlens.runs import MANIFEST, ResultStore


def test_parts_round_trip_and_done(tmp_path):
    store = ResultStore(tmp_path / "new" / "folder", "auroc", {"n_test": 5})
    assert not store.done("sst2", 42)
    store.write_part("sst2", 42, pd.DataFrame({"layer": [0, 1], "auroc": [0.5, 0.75]}))
    assert store.done("sst2", 42)
    assert store.load_part("sst2", 42)["auroc"].tolist() == [0.5, 0.75]
    assert not list(store.part_path("sst2", 42).parent.glob("*.tmp"))
    assert len(store.combined()) == 2


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    ResultStore(tmp_path, "auroc", {"n_test": 5, "model": "a"})
    ResultStore(tmp_path, "saliency", {"n_test": 9})  # another experiment may sit beside it
    with pytest.raises(InvalidConfigError, match=r"other settings \(n_test differ\)"):
        ResultStore(tmp_path, "auroc", {"n_test": 6, "model": "a"})


def test_a_folder_of_another_results_format_is_refused(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"results_format": 999, "anchorlens_version": "9.9"}))
    with pytest.raises(InvalidConfigError, match="format 999"):
        ResultStore(tmp_path, "auroc", {})


def test_a_file_where_the_folder_should_be_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidConfigError, match="not a folder"):
        ResultStore(tmp_path / "file", "auroc", {})
