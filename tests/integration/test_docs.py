"""The README's Python example runs as written, on the offline model; the site builds with warnings as errors and
renders what it should (the build is .ci/run's docs step: slow, so not in the fast tier)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.unit.test_docs import README, ROOT, _installed  # the unit tier's helpers


def test_readme_example_runs(tmp_path):
    """The README's Python example, as printed, on the offline model it names."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert blocks, "the README has a Python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "n_examples" in run.stdout  # the summary with intervals was printed
    assert (tmp_path / "runs" / "isolation" / "parts" / "isolation" / "sst2-seed42.json").is_file()


@pytest.mark.skipif(
    not _installed("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"),
    reason="mkdocs, mkdocs-material or mkdocstrings-python is not installed: pip install -e '.[docs]'",
)
def test_site_builds_with_warnings_as_errors(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # material's banner about MkDocs 2.0: not a build warning
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    # The API reference is rendered from the docstrings, not left as directives.
    hooks_page = (site / "reference" / "hooks" / "index.html").read_text(encoding="utf-8")
    assert "reweight_hooks" in hooks_page and ":::" not in hooks_page
    # Result folders stay out of the site; the archived first wave's report is in it.
    assert (site / "results" / "format1" / "RESULTS" / "index.html").is_file()
    assert not list(site.glob("results/*/parts")) and not list(site.rglob("*.parquet"))
