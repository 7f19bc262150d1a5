"""The tiers are folders (tests/conftest.py): a test in tests/unit that loads a real offline model or is marked
`integration`, or a test file outside both folders, stops the run with its name and where it belongs."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

from tests import conftest

UNIT, INTEGRATION = conftest.UNIT, conftest.INTEGRATION


def test_a_unit_test_using_a_real_model_is_refused_naming_the_fixture():
    problem = conftest.tier_problem(UNIT / "test_x.py", ["tmp_path", "smol_model"], marked_integration=False)
    assert problem is not None and "loads smol_model" in problem and "tests/integration" in problem
    problem = conftest.tier_problem(UNIT / "experiments" / "test_x.py", ["gemma_bridge"], marked_integration=False)
    assert problem is not None and "gemma_bridge" in problem


def test_a_unit_test_marked_integration_is_refused():
    problem = conftest.tier_problem(UNIT / "test_x.py", ["tmp_path"], marked_integration=True)
    assert problem is not None and "is marked integration" in problem


def test_a_test_outside_both_tiers_is_refused():
    """A test added to an old path (tests/test_x.py) or a new folder belongs to no tier."""
    for path in (conftest.TESTS / "test_x.py", conftest.TESTS / "experiments" / "test_x.py"):
        problem = conftest.tier_problem(path, [], marked_integration=False)
        assert problem is not None and "outside tests/unit and tests/integration" in problem


def test_tests_in_their_tier_and_the_doctests_pass():
    assert conftest.tier_problem(UNIT / "test_x.py", ["gpt2_like", "tmp_path"], marked_integration=False) is None
    assert conftest.tier_problem(INTEGRATION / "test_x.py", ["smol_model"], marked_integration=True) is None
    doctest = conftest.TESTS.parent / "anchorlens" / "stats.py"
    assert conftest.tier_problem(doctest, [], marked_integration=False) is None


def test_the_collected_tiers_follow_the_folders(pytestconfig):
    """This run's own items (collected by the real hook): integration is the folder, nothing else."""
    session = pytestconfig.pluginmanager.get_plugin("session") or None
    items = getattr(session, "items", [])
    assert items, "no collected items to check"
    for item in items:
        in_integration = INTEGRATION in item.path.parents
        assert (item.get_closest_marker("integration") is not None) == in_integration, item.nodeid


# ------------------------------------------------------------------ the README's test command covers the package

PACKAGE = conftest.TESTS.parent / "anchorlens"
OFFLINE_MODELS = {"smollm2-135m": {"smol_model", "smol_bridge"}, "gemma-3-270m": {"gemma_model", "gemma_bridge"}}


def _is_smoke(function: ast.FunctionDef) -> bool:
    return any(ast.unparse(decorator) == "pytest.mark.smoke" for decorator in function.decorator_list)


def _smoke_tests() -> list[tuple[ast.FunctionDef, ast.Module]]:
    found = []
    for path in sorted(INTEGRATION.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [(node, tree) for node in tree.body if isinstance(node, ast.FunctionDef) and _is_smoke(node)]
    return found


def _module_of(value) -> str | None:
    module = inspect.getmodule(value)
    return module.__name__ if module is not None and module.__name__.startswith("anchorlens") else None


def _modules_named(tree: ast.Module, nodes) -> set[str]:
    """The package modules whose names `nodes` use: ``from anchorlens.x import f`` (f's own module),
    ``import anchorlens as al`` then ``al.f``, ``from anchorlens import models`` then ``models.g``."""
    aliases: dict[str, object] = {}
    origins: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anchorlens"):
            source = importlib.import_module(node.module)
            for name in node.names:
                aliases[name.asname or name.name] = getattr(source, name.name)
                origins[name.asname or name.name] = node.module
        elif isinstance(node, ast.Import):
            for name in node.names:
                if name.name.startswith("anchorlens"):  # `import anchorlens.x` binds anchorlens; `... as y`, x
                    bound = name.name if name.asname else "anchorlens"
                    aliases[name.asname or "anchorlens"] = importlib.import_module(bound)
    used = set()
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
                value = getattr(aliases[node.value.id], node.attr, None)
                used.add(getattr(value, "__name__", None) if inspect.ismodule(value) else _module_of(value))
            elif isinstance(node, ast.Name) and node.id in aliases:
                value = aliases[node.id]
                # a constant (``__version__``) has no module of its own: the one it was imported from
                used.add(value.__name__ if inspect.ismodule(value) else _module_of(value) or origins.get(node.id))
    return {name for name in used if name}


def _package_modules() -> set[str]:
    names = {"anchorlens"}
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="anchorlens."):
        names.add(info.name)
    return names


def _modules_with_doctests() -> set[str]:
    found = set()
    for name in _package_modules():
        module = importlib.import_module(name)
        if ">>>" in inspect.getsource(module):
            found.add(name)
    return found


def test_the_readme_command_names_every_module_of_the_package():
    """Every module of anchorlens is used by name in a test of the README's command: a fast-tier test file, a
    `smoke` integration test, or its own doctest (the fast tier runs them). A static check (no coverage tool is
    installed): a module only imported on the way to another is not counted, a module no test names fails."""
    named = _modules_with_doctests()
    for path in sorted(UNIT.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named |= _modules_named(tree, [tree])
    for function, tree in _smoke_tests():
        named |= _modules_named(tree, [function])
    named |= {name.rsplit(".", 1)[0] for name in named if name.endswith(".__init__")}
    missing = sorted(_package_modules() - named - {"anchorlens", "anchorlens.experiments"})
    assert not missing, f"no test of the README's command (fast tier, smoke, doctests) names these modules: {missing}"


def test_the_smoke_tests_load_both_offline_models_and_run_the_command_line():
    uses: set[str] = set()
    for function, _ in _smoke_tests():
        uses |= {argument.arg for argument in function.args.args}
        for node in ast.walk(function):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                uses.add(node.value)
            elif isinstance(node, ast.Name):
                uses.add(node.id)
    for model, fixtures in OFFLINE_MODELS.items():
        assert model in uses or fixtures & uses, f"no smoke test loads {model}"
    assert "main" in uses, "no smoke test runs the command line (anchorlens.cli.main)"
