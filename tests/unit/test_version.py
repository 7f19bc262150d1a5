"""The version results record (anchorlens/version.py) is the one the project declares (pyproject.toml)."""

from __future__ import annotations

import re
from pathlib import Path

from anchorlens.version import __version__


def test_the_recorded_version_is_the_declared_one():
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'^version = "([^"]+)"$', pyproject, flags=re.M)
    assert declared is not None and __version__ == declared.group(1)
