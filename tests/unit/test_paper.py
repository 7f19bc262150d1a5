"""`anchorlens.paper` is the one place for the paper's constants: its seeds are written nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

import anchorlens
from anchorlens import paper

ROOT = Path(anchorlens.__file__).parent.parent

#: The paper's seeds written out as a list, a range or in words: "42 43 44", "(42, 43, 44", "42-46", "42 … 46".
SEEDS_LITERAL = re.compile(r"\b42\s*,?\s*43\s*,?\s*44\b|\b42\s*(-|–|…|\.\.\.|to)\s*46\b")


def test_the_paper_seeds_are_written_only_in_paper_py():
    assert SEEDS_LITERAL.search(repr(paper.SEEDS))  # the pattern finds the one declaration
    sources = sorted((ROOT / "anchorlens").rglob("*.py")) + sorted((ROOT / "analyses").rglob("*.py"))
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        if path != ROOT / "anchorlens" / "paper.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SEEDS_LITERAL.search(line)
    ]
    assert not found, f"the paper's seeds are written out here; read them from anchorlens.paper.SEEDS: {found}"


def test_seeds_text_is_what_a_user_types_after_seeds():
    assert paper.seeds_text() == "42 43 44 45 46"
    assert paper.seeds_text(paper.SEEDS[:1]) == "42"
