"""The experiments as their modules declare them, read from the source without importing the modules.

Each experiment module of `anchorlens.experiments` declares itself once, ``EXPERIMENT = Experiment(...)``
(`anchorlens.preparation.Experiment`). `anchorlens.registry` imports the modules and holds the declarations
themselves; this module reads only the literal parts of each declaration (its name, order, command-line help,
details and paper section) from the module's text, so that ``import anchorlens`` (its ``__all__``) and the
command line's list of subcommands know the experiments without importing them (seconds: torch, TransformerLens).
A test checks that both readings agree.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

#: Where the experiment modules are.
EXPERIMENTS_FOLDER = Path(__file__).parent / "experiments"

#: A declaration: from ``EXPERIMENT = Experiment(`` at the start of a line to the ``)`` that closes it there.
_DECLARATION = re.compile(r"^EXPERIMENT = Experiment\(\n.*?^\)$", re.MULTILINE | re.DOTALL)

#: The declaration's fields read here; each must be written as a literal.
LITERAL_FIELDS = ("name", "order", "help", "details", "section")


@dataclass(frozen=True)
class Declared:
    """The literal fields of one experiment's declaration, and the module that holds it."""

    name: str
    module: str
    order: int
    help: str
    details: str | None = None
    section: str | None = None

    @property
    def paper(self) -> bool:
        """Whether the experiment reproduces a part of the paper."""
        return self.section is not None


def declared_in(path: Path) -> Declared | None:
    """The declaration in one module's source, or None for a module that declares no experiment."""
    found = _DECLARATION.search(path.read_text(encoding="utf-8"))
    if found is None:
        return None
    call = ast.parse(found.group(0)).body[0]
    assert isinstance(call, ast.Assign) and isinstance(call.value, ast.Call)
    fields = {
        keyword.arg: ast.literal_eval(keyword.value) for keyword in call.value.keywords if keyword.arg in LITERAL_FIELDS
    }
    return Declared(module=f"anchorlens.experiments.{path.stem}", **fields)


@functools.cache
def declared() -> dict[str, Declared]:
    """Every declared experiment by name, in their declared order (the order they run and are listed in)."""
    found = [entry for path in sorted(EXPERIMENTS_FOLDER.glob("*.py")) if (entry := declared_in(path)) is not None]
    return {entry.name: entry for entry in sorted(found, key=lambda entry: entry.order)}


def public_names(entry: Declared) -> tuple[str, str, str]:
    """The public names of an experiment: its config class, result class and run function (``SaliencyConfig``,
    ``SaliencyResult``, ``run_saliency``)."""
    stem = entry.name.capitalize()
    return f"{stem}Config", f"{stem}Result", f"run_{entry.name}"
