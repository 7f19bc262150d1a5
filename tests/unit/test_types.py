"""Annotations are checked: the test run type-checks every annotated call of the package (pyproject.toml's
``--jaxtyping-packages``), `Model` admits exactly the two model classes, tests marked `bad_input` run
unchecked so that they see the one-line error a user gets, and every axis name of a jaxtyping shape or an
einops pattern in the package is one of the vocabulary `anchorlens.model_classes` documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jaxtyping
import pytest
import torch

import anchorlens
import anchorlens.model_classes
from anchorlens.metrics import correct, jaccard
from anchorlens.model_classes import Model, recorded_model_name

PACKAGE = Path(anchorlens.__file__).parent
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: einops warns on an axis named after a Python keyword, so its patterns spell the `class` axis `label`.
EINOPS_SPELLING = {"label": "class"}


def test_the_test_run_checks_shapes_dtypes_and_models_at_each_call(gpt2_like):
    assert not jaxtyping.config.jaxtyping_disable
    with pytest.raises(jaxtyping.TypeCheckError, match="prediction"):
        correct(torch.zeros(3), torch.zeros(3, dtype=torch.long))  # a float prediction where class ids go
    with pytest.raises(jaxtyping.TypeCheckError, match="batch"):
        correct(torch.zeros(3, dtype=torch.long), torch.zeros(4, dtype=torch.long))  # batch sizes disagree
    with pytest.raises(jaxtyping.TypeCheckError, match="top_k"):
        jaccard(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(jaxtyping.TypeCheckError, match="model"):
        recorded_model_name("smollm2-135m")  # a name where a loaded model goes
    assert recorded_model_name(gpt2_like).startswith("unnamed-model")


def test_model_is_either_class_and_nothing_else(gpt2_like, tiny_folder):
    from transformers import AutoModelForCausalLM

    assert isinstance(gpt2_like, Model)
    assert not isinstance(AutoModelForCausalLM.from_pretrained(tiny_folder), Model)
    assert not isinstance(object(), Model) and not isinstance(None, Model)


def test_model_answers_other_objects_without_looking_up_the_model_classes(gpt2_like, monkeypatch):
    """beartype probes each annotation with builtin objects when it wraps a function: answered without
    `_model_classes`, which imports transformer_lens's model classes (seconds per process in the test run)."""
    looked_up = []
    classes = anchorlens.model_classes._model_classes()

    def recording_lookup():
        looked_up.append(True)
        return classes

    monkeypatch.setattr(anchorlens.model_classes, "_model_classes", recording_lookup)
    assert (
        not isinstance(object(), Model) and not isinstance(None, Model) and not isinstance(torch.nn.Linear(1, 1), Model)
    )
    assert not looked_up
    assert isinstance(gpt2_like, Model) and looked_up


@pytest.mark.bad_input  # this test checks the marker itself
def test_a_bad_input_test_runs_unchecked():
    assert jaxtyping.config.jaxtyping_disable
    assert correct(torch.zeros(1), torch.zeros(4)).shape == (4,)  # unchecked: broadcasting answers instead


def documented_axes() -> set[str]:
    """The axis names of the vocabulary table in `anchorlens.model_classes`' docstring (its first column)."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", anchorlens.model_classes.__doc__ or "", flags=re.MULTILINE))


def _literal_text(node: ast.expr) -> str:
    """A string literal's text; an f-string's literal parts (the names it fills in are not known here)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(part.value for part in node.values if isinstance(part, ast.Constant))
    return ""


def axis_names(source: str) -> list[tuple[str, str, int]]:
    """(kind, axis, line) for every axis named in `source`: kind ``"jaxtyping"`` for a dimension of a shape
    (``Float[Tensor, "batch layer*head region=3 *rest"]`` names batch, layer, head, region and rest), ``"einops"``
    for an axis of an einops pattern or an axis length passed by keyword (``repeat(x, "a -> a b", b=2)``)."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> "jaxtyping" / "einops" (import jaxtyping as jt)
    members: dict[str, tuple[str, str]] = {}  # local name -> (module, name) (from einops import einsum)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name: alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module in ("jaxtyping", "einops"):
            members |= {alias.asname or alias.name: (node.module, alias.name) for alias in node.names}

    def origin(expression: ast.expr) -> tuple[str, str] | None:
        if isinstance(expression, ast.Name):
            return members.get(expression.id)
        if isinstance(expression, ast.Attribute) and isinstance(expression.value, ast.Name):
            module = modules.get(expression.value.id)
            return (module, expression.attr) if module in ("jaxtyping", "einops") else None
        return None

    found: list[tuple[str, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and (origin(node.value) or ("",))[0] == "jaxtyping":
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else []
            dimensions = _literal_text(parts[1]).split() if len(parts) == 2 else []
            for dimension in dimensions:  # "region=3" names region; "layer*head" names both
                found += [("jaxtyping", name, node.lineno) for name in IDENTIFIER.findall(dimension.split("=")[0])]
        elif isinstance(node, ast.Call) and (source_of := origin(node.func)) and source_of[0] == "einops":
            # The pattern: last of einsum's arguments, second of the others (reduce's third is its reduction).
            patterns = node.args[-1:] if source_of[1] == "einsum" else node.args[1:2]
            patterns += [keyword.value for keyword in node.keywords if keyword.arg == "pattern"]
            for pattern in patterns:
                found += [("einops", name, node.lineno) for name in IDENTIFIER.findall(_literal_text(pattern))]
            lengths = [keyword.arg for keyword in node.keywords if keyword.arg not in (None, "pattern", "reduction")]
            found += [("einops", name, node.lineno) for name in lengths]
    return found


def off_vocabulary(found: list[tuple[str, str, int]], vocabulary: set[str]) -> list[tuple[str, str, int]]:
    """The entries of `found` whose axis is not in `vocabulary` (einops spelling the class axis `label`)."""
    wrong = []
    for kind, name, line in found:
        if kind == "einops":
            known = name not in EINOPS_SPELLING.values() and EINOPS_SPELLING.get(name, name) in vocabulary
        else:
            known = name in vocabulary
        if not known:
            wrong.append((kind, name, line))
    return wrong


def test_every_axis_name_in_the_package_is_one_of_the_documented_vocabulary():
    """One name per axis across the package: a shape or pattern naming an axis outside the table in
    `anchorlens.model_classes` fails (rename it, or add a row for a new axis), as does a row no code uses."""
    vocabulary = documented_axes()
    assert {"batch", "example", "seq", "query", "key", "class", "layer", "head"} <= vocabulary  # the table parsed
    assert "`label` in einops patterns" in (anchorlens.model_classes.__doc__ or "")
    used: set[str] = set()
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found = axis_names(path.read_text(encoding="utf-8"))
        used |= {EINOPS_SPELLING.get(name, name) if kind == "einops" else name for kind, name, _ in found}
        where = path.relative_to(PACKAGE.parent)
        wrong += [f"{where}:{line} {kind} axis {name!r}" for kind, name, line in off_vocabulary(found, vocabulary)]
    assert not wrong, "axis names outside the vocabulary of anchorlens/model_classes.py:\n" + "\n".join(wrong)
    assert not vocabulary - used, f"documented axes no annotation or pattern uses: {sorted(vocabulary - used)}"


def test_the_axis_scan_reads_shapes_products_sizes_and_einops_patterns():
    source = """
import jaxtyping as jt
import torch
from einops import einsum, rearrange, reduce
from jaxtyping import Float

def f(x: Float[Tensor, "batch pos *rest"], y: jt.Int[np.ndarray, "layer*head region=3 ... 1"]) -> None:
    z = rearrange(x, f"batch pos {axes} -> (batch pos) {axes}", pos=2, **sizes)
    w = einsum(x, y, "batch class, batch label -> batch")
    return reduce(x, "batch width -> batch", "mean"), torch.einsum("ij->i", x), "batch nothing", z, w
"""
    found = axis_names(source)
    jaxtyping_names = {"batch", "pos", "rest", "layer", "head", "region"}
    einops_names = {"batch", "pos", "width", "class", "label"}
    assert {(kind, name) for kind, name, _ in found} == {("jaxtyping", name) for name in jaxtyping_names} | {
        ("einops", name) for name in einops_names
    }
    wrong = {(kind, name) for kind, name, _ in off_vocabulary(found, documented_axes())}
    assert wrong == {("jaxtyping", "pos"), ("einops", "pos"), ("einops", "width"), ("einops", "class")}
