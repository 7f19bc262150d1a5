"""Each experiment is declared once, in its own module (``EXPERIMENT = Experiment(...)``): the registry, the
command line, `anchorlens reproduce` and ``anchorlens.__all__`` come from the declarations, and no second
hand-written list of their names exists."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import anchorlens
from anchorlens.catalog import LITERAL_FIELDS, declared, public_names
from anchorlens.registry import EXPERIMENTS, in_paper_order

ROOT = Path(anchorlens.__file__).parent.parent

#: A literal tuple, list, set or dict naming this many experiments or more is a list of them.
LISTING = 3
PAPER_EXPERIMENTS = {name for name, spec in EXPERIMENTS.items() if spec.paper}
#: Literals whose strings are experiment names by coincidence, each with why.
NOT_LISTINGS = {
    # the public analysis functions `al.saliency`, `al.isolation`, `al.compress` share their experiments' names
    ("anchorlens/__init__.py", "_LAZY"),
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


def _listings(path: Path, enough) -> list[tuple[int, list[str]]]:
    """(line, names) of every literal container in `path` whose experiment names are `enough`, but for the
    `NOT_LISTINGS`."""
    tree = ast.parse(path.read_text())
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    skipped = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and (where, target.id) in NOT_LISTINGS
    }
    return [
        (node.lineno, names) for node in ast.walk(tree) if id(node) not in skipped and enough(names := _names_in(node))
    ]


def _declared_names(path: Path) -> list[str]:
    """The ``name=`` of every ``Experiment(...)`` call in `path`."""
    return [
        keyword.value.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Experiment"
        for keyword in node.keywords
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant)
    ]


def test_no_second_hand_written_list_of_the_experiments():
    package = sorted((ROOT / "anchorlens").rglob("*.py"))
    found = [
        f"{path.relative_to(ROOT)}:{line} {names}"
        for path in package
        for line, names in _listings(path, lambda names: len(set(names)) >= LISTING)
    ]
    # In the analyses, fewer than all of the paper's experiments is a choice among them (e.g. the columns
    # compared per experiment in analyses/class_agreement.py); all of them is a list.
    analyses = sorted((ROOT / "analyses").rglob("*.py"))
    found += [
        f"{path.relative_to(ROOT)}:{line} {names}"
        for path in analyses
        for line, names in _listings(path, lambda names: set(names) >= PAPER_EXPERIMENTS)
    ]
    assert not found, "a hand-written list of the experiments; derive it from anchorlens.registry.EXPERIMENTS"


def test_the_scan_finds_a_hand_written_list(tmp_path):
    module = tmp_path / "listing.py"
    module.write_text('ORDER = ("saliency", "auroc", "reweight")\nCHOICE = {"saliency": 1, "compress": 2}\n')
    assert _listings(module, lambda names: len(set(names)) >= LISTING) == [(1, ["saliency", "auroc", "reweight"])]


def test_each_experiment_is_declared_once_in_its_own_module():
    declarations = {
        path.stem: names for path in sorted((ROOT / "anchorlens").rglob("*.py")) if (names := _declared_names(path))
    }
    assert sorted(name for names in declarations.values() for name in names) == sorted(EXPERIMENTS)
    assert all(names == [module] for module, names in declarations.items()), declarations


def test_the_source_reading_agrees_with_the_imported_declarations():
    assert list(declared()) == list(EXPERIMENTS)  # in the declared order
    for name, entry in declared().items():
        experiment = EXPERIMENTS[name]
        assert entry.module == experiment.result_class.__module__
        for field in LITERAL_FIELDS:
            assert getattr(entry, field) == getattr(experiment, field), (name, field)
        assert [cls.__name__ for cls in (experiment.config_class, experiment.result_class)] == list(
            public_names(entry)[:2]
        )
        assert experiment.result_class.experiment == name


def test_the_public_names_come_from_the_declarations():
    import anchorlens.experiments as experiments

    for name, entry in declared().items():
        config, result, run = public_names(entry)
        assert {config, result, run} <= set(anchorlens.__all__) & set(experiments.__all__)
        declaration = EXPERIMENTS[name]
        assert getattr(anchorlens, config) is declaration.config_class
        assert getattr(anchorlens, result) is declaration.result_class
        function = getattr(anchorlens, run)
        assert function.__name__ == run and function.__doc__ == declaration.docstring()
        signature = inspect.signature(function)
        assert list(signature.parameters) == ["model", "task", "config", "out", "progress"]
        assert signature.parameters["config"].default == declaration.config_class()
        assert signature.return_annotation is declaration.result_class


def test_the_command_line_and_reproduce_come_from_the_declarations():
    from anchorlens import cli, reproduce

    assert cli.RUN_COMMANDS == {name: spec.help for name, spec in EXPERIMENTS.items()}
    defaults = reproduce.ReproduceConfig()
    assert defaults.experiments == tuple(name for name, spec in EXPERIMENTS.items() if spec.paper)
    assert all(EXPERIMENTS[name].expectation for name in PAPER_EXPERIMENTS)
    assert all(EXPERIMENTS[name].reference_part_seconds for name in PAPER_EXPERIMENTS)


def test_a_declaration_names_figures_that_exist():
    from anchorlens import plots
    from anchorlens.registry import figures

    for name, spec in EXPERIMENTS.items():
        stems = list(spec.figure_stems())
        assert stems[0] == name  # the main figure is <name>.html
        assert all(callable(getattr(plots, function)) for function in spec.figures)
        assert list(figures(name)) == stems
        assert dataclasses.is_dataclass(spec.config_class)
    # a figure function outside anchorlens.plots, named "module:function"
    elsewhere = dataclasses.replace(EXPERIMENTS["saliency"], figures=("anchorlens.plots:plot_saliency",))
    assert list(elsewhere.figure_stems()) == ["saliency"]


def test_in_paper_order_follows_the_papers_sections():
    assert in_paper_order() == ("saliency", "isolation", "auroc", "reweight", "compress", "diagnose")
    assert [EXPERIMENTS[name].section for name in in_paper_order()] == ["2.1", "2.2", "2.3", "3.1", "3.2", "3.3"]
    assert "heads" in EXPERIMENTS and "heads" not in in_paper_order()  # anchorlens's own experiment
