"""The README's Python example runs as written, on the offline model."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.unit.test_docs import README  # the unit tier's helpers


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
