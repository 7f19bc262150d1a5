"""The slow-tier list in conftest.py names tests that exist: a renamed test would silently leave the slow tier."""

from __future__ import annotations

import re
from pathlib import Path

import conftest

TESTS = Path(__file__).parents[1]


def test_every_slow_test_entry_names_a_test_that_exists():
    defined = {
        name
        for path in TESTS.rglob("test_*.py")
        for name in re.findall(r"^\s*def (test_\w+)\(", path.read_text(encoding="utf-8"), flags=re.M)
    }
    stale = sorted(set(conftest.SLOW_TESTS) - defined)
    assert not stale, f"conftest.SLOW_TESTS names tests that no longer exist (renamed?): {stale}"
