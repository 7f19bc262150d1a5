"""`anchorlens.registry` declares each experiment once: no second hand-written list of their names."""

from __future__ import annotations

import ast
from pathlib import Path

import anchorlens
from anchorlens.registry import EXPERIMENTS, in_paper_order

ROOT = Path(anchorlens.__file__).parent.parent

#: A literal tuple, list, set or dict that names every experiment of the paper is a list of them (fewer is a
#: choice among them, e.g. the columns compared per experiment in analyses/class_agreement.py).
PAPER_EXPERIMENTS = {name for name, spec in EXPERIMENTS.items() if spec.paper}

#: The listings that remain, each with why, each checked below to hold exactly the registry's names.
ALLOWED = {
    # `anchorlens tasks` and every other command start without importing the experiments (build_parser): the
    # registry imports every experiment and figure, about twice the command line's own import time.
    ("anchorlens/cli.py", "RUN_COMMANDS"): "the command line's one-line help per experiment",
    # the paper's constants live in paper.py, keyed by the experiment that reproduces them
    ("anchorlens/paper.py", "EXPECTED"): "the paper's finding per experiment",
    # measured numbers, keyed by experiment
    ("anchorlens/reproduce.py", "REFERENCE_PART_SECONDS"): "the measured seconds per part",
}


def _names_in(node: ast.AST) -> list[str]:
    """The experiment names among the string elements (or dict keys) of a literal container."""
    if isinstance(node, ast.Dict):
        elements = [key for key in node.keys if key is not None]
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        elements = list(node.elts)
    else:
        return []
    return [e.value for e in elements if isinstance(e, ast.Constant) and e.value in EXPERIMENTS]


def _listings(path: Path) -> list[tuple[str, int, list[str]]]:
    """(the name assigned, or "", line, names) of every literal in `path` that lists experiments."""
    tree = ast.parse(path.read_text())
    assigned = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                assigned[id(node.value)] = targets[0].id
    return [
        (assigned.get(id(node), ""), node.lineno, names)
        for node in ast.walk(tree)
        if set(names := _names_in(node)) >= PAPER_EXPERIMENTS
    ]


def test_the_experiments_are_listed_by_hand_only_in_the_registry():
    sources = sorted((ROOT / "anchorlens").rglob("*.py")) + sorted((ROOT / "analyses").rglob("*.py"))
    found = {
        (str(path.relative_to(ROOT)), name, line): names for path in sources for name, line, names in _listings(path)
    }
    declaration = [key for key in found if key[:2] == ("anchorlens/registry.py", "EXPERIMENTS")]
    assert len(declaration) == 1  # the scan finds the one declaration
    more = [f"{where}:{line} ({name or 'a literal'})" for where, name, line in found if (where, name) not in ALLOWED]
    assert more == [f"anchorlens/registry.py:{declaration[0][2]} (EXPERIMENTS)"], (
        "a second hand-written list of the experiments; derive it from anchorlens.registry.EXPERIMENTS "
        "(in_paper_order() for the paper's order)"
    )


def test_the_remaining_listings_hold_exactly_the_registrys_names():
    from anchorlens import cli, paper, reproduce

    assert list(cli.RUN_COMMANDS) == list(EXPERIMENTS)  # in the registry's order: `anchorlens --help`
    assert set(paper.EXPECTED) == PAPER_EXPERIMENTS
    assert set(reproduce.REFERENCE_PART_SECONDS) == PAPER_EXPERIMENTS


def test_in_paper_order_follows_the_papers_sections():
    assert in_paper_order() == ("saliency", "isolation", "auroc", "reweight", "compress", "diagnose")
    assert [EXPERIMENTS[name].section for name in in_paper_order()] == ["2.1", "2.2", "2.3", "3.1", "3.2", "3.3"]
    assert "heads" in EXPERIMENTS and "heads" not in in_paper_order()  # anchorlens's own experiment
