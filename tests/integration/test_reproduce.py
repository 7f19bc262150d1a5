"""`reproduce` end to end: every experiment into one folder, a report, a manifest; reruns resume."""

from __future__ import annotations

import json

from anchorlens.orchestrate import EXPERIMENTS
from anchorlens.reproduce import ReproduceConfig, reproduce


def test_reproduce_writes_report_manifest_and_tables(tmp_path, tiny_folder):
    config = ReproduceConfig(model=str(tiny_folder), tasks=("sst2",), n_test=2, batch_size=2)
    report = reproduce(config, tmp_path, progress=False)
    text = report.read_text()
    assert config.experiments == tuple(name for name, spec in EXPERIMENTS.items() if spec.paper)
    for name in config.experiments:
        assert f"## {name}" in text and (tmp_path / name / f"{name}.csv").is_file()
    assert "## heads" not in text  # not a part of the paper: `anchorlens heads` runs it
    assert "paper, GPT2-XL" in text  # the paper's numbers stand beside ours
    for figure in tmp_path.glob("*/*.html"):  # every figure written is linked, e.g. isolation across k
        assert f"({figure.parent.name}/{figure.name})" in text, figure
    assert "(isolation/isolation_by_k.html)" in text and "(compress/compress_by_task.html)" in text
    # the main job's lighter settings ran, and the report says so in its header and in each section
    assert "Size: a smoke test, not the paper's: 1 of the paper's 5 seeds; 2 test inputs" in text
    assert "Main-job settings (smoke size): k 5 (full: 1 3 5 7)" in text
    import pandas as pd

    assert set(pd.read_csv(tmp_path / "isolation" / "isolation.csv")["k"]) == {5}
    manifest = json.loads((tmp_path / "reproduce-manifest.json").read_text())
    assert manifest["config"]["n_test"] == 2 and "torch" in manifest["versions"]
    parts = sorted(p.stat().st_mtime_ns for p in tmp_path.glob("*/parts/*/*.csv"))
    reproduce(config, tmp_path, progress=False)  # resumes: nothing finished is recomputed
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.glob("*/parts/*/*.csv")) == parts
