"""Result folders: a part is finished only when whole and made with the same settings; writes are atomic and
never follow links; foreign formats, other models and other settings are refused."""

from __future__ import annotations

import json
import os
import threading

import pandas as pd
import pytest

from anchorlens.errors import InvalidConfigError
from anchorlens.files import atomic_write_text, file_lock
from anchorlens.runs import MANIFEST, DamagedPartWarning, ResultStore, read_parts

ROWS = pd.DataFrame({"layer": [0, 1], "auroc": [0.5, 0.75]})
EXAMPLES = pd.DataFrame({"example": [3, 9, 3, 9], "layer": [0, 0, 1, 1], "gold": [1, 0, 1, 0]})
SETTINGS = {"n_test": 2, "model": "m"}


def _store(folder, settings=SETTINGS, experiment="auroc"):
    return ResultStore(folder, experiment, settings)


def _written(folder):
    store = _store(folder)
    store.write_part("sst2", 42, ROWS, EXAMPLES)
    return store


def test_parts_round_trip_with_their_examples(tmp_path):
    store = _store(tmp_path / "new" / "folder")
    assert not store.done("sst2", 42)
    store.write_part("sst2", 42, ROWS, EXAMPLES)
    assert store.done("sst2", 42)
    part = store.load_part("sst2", 42)
    pd.testing.assert_frame_equal(part.rows, ROWS)
    pd.testing.assert_frame_equal(part.examples, EXAMPLES)
    assert not list(store.part_path("sst2", 42).parent.glob("*.tmp"))
    record = json.loads(store.part_path("sst2", 42).read_text())
    assert record["signature"] == SETTINGS and record["rows"] == 2 and record["example_rows"] == 4


def test_building_a_store_writes_nothing(tmp_path):
    """A run refused after the store is built (bad seeds, a model mismatch) leaves no manifest behind."""
    _store(tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda csv: csv.write_text(csv.read_text()[:-7]),  # cut mid-line
        lambda csv: csv.write_text(""),  # emptied
        lambda csv: csv.write_bytes(b"\x00\xff garbage"),  # garbled
        lambda csv: csv.unlink(),  # missing
        lambda csv: csv.write_text(csv.read_text().replace("0.75", "0.25")),  # edited, same length
    ],
    ids=["cut", "empty", "garbage", "missing", "edited"],
)
def test_a_damaged_part_is_reported_by_path_and_recomputed(tmp_path, damage):
    store = _written(tmp_path)
    csv = store.part_path("sst2", 42).with_suffix(".csv")
    damage(csv)
    with pytest.warns(DamagedPartWarning, match=r"sst2-seed42 is damaged"):
        assert not store.done("sst2", 42)
    with pytest.warns(DamagedPartWarning):
        with pytest.raises(InvalidConfigError, match="rerun to recompute"):
            store.load_part("sst2", 42)
    store.write_part("sst2", 42, ROWS, EXAMPLES)  # recomputed
    assert store.done("sst2", 42)


def test_damaged_examples_or_record_are_not_read_as_data(tmp_path):
    store = _written(tmp_path)
    examples = tmp_path / "parts" / "auroc" / "sst2-seed42.examples.parquet"
    examples.write_bytes(examples.read_bytes()[:-10])
    with pytest.warns(DamagedPartWarning, match="examples.parquet"):
        assert not store.done("sst2", 42)
    store = _written(tmp_path)
    store.part_path("sst2", 42).write_text("{not json")
    with pytest.warns(DamagedPartWarning, match="cannot be read"):
        assert not store.done("sst2", 42)


def test_a_part_made_with_other_settings_is_refused_even_without_the_manifest(tmp_path):
    """With manifest.json deleted, a rerun with --n-test 2 reused an n_test 4 part: the part's own record
    now carries its settings, checked when the store is made (before anything is written)."""
    _written(tmp_path)
    (tmp_path / MANIFEST).unlink()
    with pytest.raises(InvalidConfigError, match=r"sst2-seed42.json was made with other settings \(n_test differ\)"):
        _store(tmp_path, {"n_test": 4, "model": "m"})


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    _written(tmp_path)
    _store(tmp_path, {"n_test": 9, "model": "m"}, experiment="saliency")  # another experiment may sit beside it
    with pytest.raises(InvalidConfigError, match=r"other settings \(n_test differ\)"):
        _store(tmp_path, {"n_test": 6, "model": "m"})


def test_a_folder_of_another_model_is_refused(tmp_path):
    _written(tmp_path)
    with pytest.raises(InvalidConfigError, match=r"holds results of model 'm', and this run is of 'other'"):
        _store(tmp_path, {"n_test": 2, "model": "other"}, experiment="saliency")


def test_a_folder_of_another_results_format_is_refused(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"results_format": 1, "anchorlens_version": "0.0"}))
    with pytest.raises(InvalidConfigError, match="format 1"):
        _store(tmp_path)


@pytest.mark.parametrize("below", [False, True])
def test_a_file_where_the_folder_should_be_is_refused(tmp_path, below):
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" / "out" if below else tmp_path / "file"
    with pytest.raises(InvalidConfigError, match="a file|not a folder"):
        _store(folder)


def test_writes_replace_a_planted_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").symlink_to(victim)
    atomic_write_text(out / "report.md", "report")
    assert victim.read_text() == "precious"
    assert (out / "report.md").read_text() == "report" and not (out / "report.md").is_symlink()


def test_a_lock_never_follows_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "part.lock").symlink_to(victim)
    with pytest.raises(InvalidConfigError, match="symbolic link"):
        with file_lock(tmp_path / "part.lock"):
            pass
    assert victim.read_text() == "precious"


def test_a_second_run_waits_for_the_part_the_first_is_computing(tmp_path, monkeypatch):
    """Ordered by events, not by sleeping: the first run takes the lock, the second finds it taken and blocks,
    and only then does the first write its part; the second then sees the part done instead of computing it."""
    import fcntl
    import types

    import anchorlens.files

    store = _store(tmp_path)
    order = []
    first_holds, second_blocked = threading.Event(), threading.Event()

    def flock(descriptor, operation):
        if threading.current_thread() is threading.main_thread():  # the second run: say when it has to wait
            try:
                fcntl.flock(descriptor, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                second_blocked.set()
        fcntl.flock(descriptor, operation)

    monkeypatch.setattr(anchorlens.files, "fcntl", types.SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX))

    def first():
        with store.lock("sst2", 42):
            order.append("first computes")
            first_holds.set()
            second_blocked.wait(timeout=60)  # a bound, not an order: a broken lock fails the asserts below
            store.write_part("sst2", 42, ROWS, EXAMPLES)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_holds.wait(timeout=60)
    with store.lock("sst2", 42):
        order.append("second sees done" if store.done("sst2", 42) else "second computes")
    thread.join()
    assert second_blocked.is_set()  # the second run did wait for the lock
    assert order == ["first computes", "second sees done"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_gives_one_line_and_can_still_be_read(tmp_path):
    _written(tmp_path)
    os.chmod(tmp_path, 0o555)
    try:
        store = _store(tmp_path)
        assert store.done("sst2", 42)
        assert len(read_parts(tmp_path, "auroc").examples) == 4
        with pytest.raises(InvalidConfigError, match="cannot write"):
            store.write_part("trec", 42, ROWS, EXAMPLES)
    finally:
        os.chmod(tmp_path, 0o755)


def test_unwritable_folder_is_one_line_error(tmp_path, monkeypatch):
    """Root ignores permissions, so the unwritable case is simulated where the temporary file is made."""
    import tempfile as tempfile_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile_module, "mkstemp", refuse)
    with pytest.raises(InvalidConfigError, match=r"cannot write .*permission denied.*writable --out"):
        atomic_write_text(tmp_path / "x.txt", "x")


def test_a_part_copied_under_another_seeds_name_is_damaged_not_read(tmp_path):
    """Issue 31 item 7: ``sst2-seed42.*`` copied to ``sst2-seed43.*`` was read as seed 43 (and a resume wrote a
    table holding seed 42 twice). A record that disagrees with its file name is damaged: recomputed."""
    store = _store(tmp_path)
    rows = ROWS.assign(task="sst2", seed=42)
    store.write_part("sst2", 42, rows, EXAMPLES.assign(task="sst2", seed=42))
    for suffix in (".csv", ".examples.parquet", ".json"):
        source = tmp_path / "parts" / "auroc" / f"sst2-seed42{suffix}"
        (source.parent / f"sst2-seed43{suffix}").write_bytes(source.read_bytes())
    with pytest.warns(DamagedPartWarning, match="sst2-seed43 is damaged: its record is of"):
        assert not store.done("sst2", 43)
    assert store.done("sst2", 42)
    with pytest.raises(InvalidConfigError, match="sst2-seed43 is damaged: its record is of .*rerun the experiment"):
        read_parts(tmp_path, "auroc")  # a reader cannot recompute it; a table without it would be another result


def test_a_record_renamed_with_its_rows_still_labelled_is_damaged(tmp_path):
    """A record edited to the new name, its rows still saying seed 42: the rows decide, the part is damaged."""
    store = _store(tmp_path)
    store.write_part("sst2", 42, ROWS.assign(task="sst2", seed=42), EXAMPLES.assign(task="sst2", seed=42))
    folder = tmp_path / "parts" / "auroc"
    for suffix in (".csv", ".examples.parquet"):
        (folder / f"sst2-seed43{suffix}").write_bytes((folder / f"sst2-seed42{suffix}").read_bytes())
    record = json.loads((folder / "sst2-seed42.json").read_text())
    (folder / "sst2-seed43.json").write_text(json.dumps({**record, "seed": 43}))
    with pytest.warns(DamagedPartWarning, match="rows are of another task or seed"):
        assert not store.done("sst2", 43)


@pytest.mark.parametrize("link", ["parts", "parts/auroc", "beta"])
def test_a_folder_symlink_inside_out_is_refused_before_any_write(tmp_path, link):
    """Issue 31 item 10: ``ln -s /elsewhere O/parts`` made a run write ``/elsewhere/isolation/...``."""
    out, elsewhere = tmp_path / "O", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    (out / link).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InvalidConfigError, match=f"{link} is a symbolic link; anchorlens does not follow links"):
        _store(out).write_part("sst2", 42, ROWS, EXAMPLES)
    assert list(elsewhere.iterdir()) == [] and not (out / MANIFEST).exists()


def test_a_refused_run_without_a_manifest_writes_nothing(tmp_path):
    """Issue 31 item 12: with manifest.json deleted, a run of another model (``--model-class bridge``) wrote its
    part and a new manifest into the folder, then refused. The part records are checked first."""
    _written(tmp_path)
    (tmp_path / MANIFEST).unlink()
    before = sorted(path.name for path in tmp_path.rglob("*"))
    for other in ({**SETTINGS, "model": "m:bridge"}, {**SETTINGS, "n_test": 3}, {**SETTINGS, "dtype": "bfloat16"}):
        with pytest.raises(InvalidConfigError, match="sst2-seed42.json (holds results of model|was made with|was co)"):
            _store(tmp_path, other)
    with pytest.raises(InvalidConfigError, match="holds results of model 'm'"):
        _store(tmp_path, {**SETTINGS, "model": "m:bridge"}, experiment="saliency")  # another experiment: the model
    assert sorted(path.name for path in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("out", ["", "  "])
def test_an_empty_output_path_is_refused(tmp_path, monkeypatch, out):
    """Issue 31 item 13: ``--out ""`` wrote into the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidConfigError, match="the output folder is an empty path"):
        _store(out)
    assert list(tmp_path.iterdir()) == []
