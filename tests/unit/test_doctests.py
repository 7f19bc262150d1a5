"""Public functions carry a short ``>>>`` example, run as a doctest in the fast tier (pyproject.toml:
``--doctest-modules`` over ``anchorlens``): a public function without one fails here. Examples that need a
model build one with random weights (`anchorlens.random_model`), never the offline models' weights."""

from __future__ import annotations

import inspect

import anchorlens


def _public_functions() -> dict[str, object]:
    return {
        name: getattr(anchorlens, name) for name in anchorlens.__all__ if inspect.isfunction(getattr(anchorlens, name))
    }


def test_every_public_function_has_an_example():
    without = sorted(
        name for name, function in _public_functions().items() if ">>>" not in (inspect.getdoc(function) or "")
    )
    assert not without, f"give these public functions a >>> example under an 'Examples:' heading: {without}"


def test_examples_sit_in_an_examples_section():
    """mkdocstrings (Google style) renders an ``Examples:`` section as code; a bare ``>>>`` line is read as
    Markdown, where ``['a', 'b']`` becomes a broken cross-reference and fails the strict docs build."""
    bare = [
        name
        for name, function in _public_functions().items()
        if ">>>" in (inspect.getdoc(function) or "") and "Examples:" not in (inspect.getdoc(function) or "")
    ]
    assert not bare, f"put these >>> examples under an 'Examples:' heading: {bare}"
