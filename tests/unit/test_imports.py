"""The package's imports go one way, down the data flow, and no private name crosses a module boundary.

Every module of `anchorlens` is read with `ast` (imports at the top, inside functions and under
``if TYPE_CHECKING`` alike) and mapped to its layer below; a module may import only from its own layer or a
lower one. A new module must be given a layer here: the test fails until it has one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import anchorlens
from anchorlens.catalog import declared

PACKAGE = Path(anchorlens.__file__).parent

#: Lowest first. The order follows the data: tasks are sampled, sampled examples become prompts, a loaded
#: model runs prompts (forward), hooks act during the run, the key/value cache reuses runs, results are
#: stored, experiments combine all of these, and figures, orchestration and the command line sit on top.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    (
        "leaves",
        frozenset(
            {
                "anchorlens.errors",
                "anchorlens.version",
                "anchorlens.paper",
                "anchorlens.stats",
                "anchorlens.metrics",
                "anchorlens.files",
                # every seeded random stream, keyed as the results depend on
                "anchorlens.random_streams",
                # what the experiment modules declare, read from their source without importing them
                "anchorlens.catalog",
                # the model classes and the `Model` type every layer that takes a model annotates with
                "anchorlens.model_classes",
            }
        ),
    ),
    ("tasks", frozenset({"anchorlens.tasks"})),
    ("sampling", frozenset({"anchorlens.sampling"})),
    ("prompts", frozenset({"anchorlens.prompts"})),
    # the saliency regions of a prompt, from its tracked positions
    ("regions", frozenset({"anchorlens.regions"})),
    ("model loading", frozenset({"anchorlens.models"})),
    ("forward", frozenset({"anchorlens.forward", "anchorlens.activations"})),
    ("hooks", frozenset({"anchorlens.hooks"})),
    ("kv cache", frozenset({"anchorlens.kv_cache"})),
    ("result store", frozenset({"anchorlens.runs"})),
    ("experiment framework", frozenset({"anchorlens.experiments.common"})),
    # an experiment's declaration and the one preparation of every run (tasks, folder, model, hooks), with the
    # data-parallel placement it loads a model with
    ("run preparation", frozenset({"anchorlens.preparation", "anchorlens.distributed"})),
    # every module that declares an experiment (found as the registry finds them), and one prompt's flow
    ("experiments", frozenset({*(entry.module for entry in declared().values()), "anchorlens.flow"})),
    ("experiments package", frozenset({"anchorlens.experiments"})),
    (
        "figures and orchestration",
        frozenset(
            {
                "anchorlens.plots",
                "anchorlens.orchestrate",
                "anchorlens.registry",
                # a results folder's combined outputs (tables, figures, README.md), and the answers a command prints
                "anchorlens.outputs",
                "anchorlens.answers",
            }
        ),
    ),
    (
        # the paper's findings judged on results folders: reads what experiments saved, over the registry's list
        "claims",
        frozenset(
            {
                "anchorlens.claims.rules",
                "anchorlens.claims.inputs",
                "anchorlens.claims.saliency",
                "anchorlens.claims.isolation",
                "anchorlens.claims.auroc",
                "anchorlens.claims.arms",
                "anchorlens.claims.reweight",
                "anchorlens.claims.compress",
                "anchorlens.claims.diagnose",
                "anchorlens.claims.report",
                "anchorlens.claims.blocks",
                "anchorlens.claims.command",
                "anchorlens.claims.provenance",
                "anchorlens.claims.method_choices",
                "anchorlens.claims",
            }
        ),
    ),
    ("entry points", frozenset({"anchorlens.reproduce", "anchorlens.cli"})),
    ("public API", frozenset({"anchorlens"})),
)

LAYER_OF = {module: index for index, (_, modules) in enumerate(LAYERS) for module in modules}

#: The one import that goes up the layers, inside a function, at call time: ``run_*(..., out=DIR)`` writes what
#: the command writes, figures included, so the experiment framework's last step calls the outputs writer a layer
#: above it. Listed here so that the checks below see every other import and no second one slips in.
CALL_TIME_UPWARD = {("anchorlens.experiments.common", "anchorlens.outputs")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = package_modules()


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against `module`)."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def imports_of(module: str, source: str | None = None) -> list[tuple[int, str, str | None]]:
    """(line, imported package module, imported name or None) for every import of a package module."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8") if source is None else source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] in MODULES]
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node)
            if origin.split(".")[0] not in MODULES:
                continue
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                # `from anchorlens import paper` imports the module anchorlens.paper, not the package root
                found.append(
                    (node.lineno, submodule, None) if submodule in MODULES else (node.lineno, origin, alias.name)
                )
    return found


def private_attribute_uses(module: str, source: str | None = None) -> list[tuple[int, str]]:
    """``alias._name`` where `alias` is another package module imported by name (``from anchorlens import
    runs``, ``import anchorlens.runs as runs``)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8") if source is None else source)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            origin = _absolute(module, node)
            for alias in node.names:
                if f"{origin}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{origin}.{alias.name}"
    return [
        (node.lineno, f"{aliases[node.value.id]}.{node.attr}")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and aliases[node.value.id] != module
        and _is_private(node.attr)
    ]


def _target(imported: str) -> str:
    """The package module an import resolves to (a name imported from a module belongs to that module)."""
    return imported if imported in MODULES else imported.rsplit(".", 1)[0]


def upward_imports(module: str, source: str | None = None) -> list[str]:
    found = []
    for line, imported, name in imports_of(module, source):
        target = _target(imported)
        if (module, target) in CALL_TIME_UPWARD:
            continue
        if target in LAYER_OF and LAYER_OF[target] > LAYER_OF[module]:
            what = imported if name is None else f"{name} from {imported}"
            found.append(
                f"{module} (layer {LAYERS[LAYER_OF[module]][0]!r}) imports {what} "
                f"(layer {LAYERS[LAYER_OF[target]][0]!r}) at line {line}"
            )
    return found


def private_crossings(module: str, source: str | None = None) -> list[str]:
    found = [
        f"{module} imports {imported}.{name} at line {line}"
        for line, imported, name in imports_of(module, source)
        if name is not None and _is_private(name) and imported != module
    ]
    return found + [f"{module} uses {used} at line {line}" for line, used in private_attribute_uses(module, source)]


def test_the_call_time_upward_imports_are_there():
    """An exception that no longer matches an import is removed, not left to excuse a later one."""
    for module, target in CALL_TIME_UPWARD:
        assert any(_target(imported) == target for _, imported, _ in imports_of(module)), (module, target)


def test_every_module_has_a_layer():
    missing = sorted(set(MODULES) - set(LAYER_OF))
    assert not missing, f"give these modules a layer in tests/unit/test_imports.py LAYERS: {missing}"


def test_imports_go_down_the_data_flow():
    upward = [found for module in sorted(set(MODULES) & set(LAYER_OF)) for found in upward_imports(module)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_private_name_crosses_a_module_boundary():
    crossing = [found for module in sorted(MODULES) for found in private_crossings(module)]
    assert not crossing, "private names used across modules:\n" + "\n".join(crossing)


def test_figures_are_drawn_only_in_plots():
    """Experiments compute; `anchorlens.plots` draws. (plot_compress and plot_reweight used to live in their
    experiments, and `anchorlens.experiments` imported plots back.)"""
    drawing = []
    for module in sorted(set(MODULES) - {"anchorlens.plots"}):
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            drawing += [
                f"{module} imports {name} at line {node.lineno}" for name in names if name.split(".")[0] == "plotly"
            ]
    assert not drawing, "\n".join(drawing)


def test_the_module_graph_has_no_cycle():
    """Same-layer imports are allowed, so check the graph as a whole too (depth-first, colours)."""
    graph = {module: {_target(imported) for _, imported, _ in imports_of(module)} - {module} for module in MODULES}
    for module, target in CALL_TIME_UPWARD:
        graph[module].discard(target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if target not in MODULES or target == "anchorlens":
                continue  # the root re-exports the package; importing it from inside is an upward import
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[module] = 2
        path.pop()
        return None

    for module in sorted(MODULES):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_imports_inside_functions_and_private_names():
    """The checks above would pass vacuously if the walker missed imports inside functions or aliases."""
    source = (
        "from anchorlens import metrics\n"
        "def f():\n"
        "    from anchorlens.cli import main\n"
        "    from anchorlens.errors import _hidden\n"
        "    import anchorlens\n"
        "    return metrics._helper\n"
    )
    upward = upward_imports("anchorlens.sampling", source)
    assert [line.split(" imports ")[1].split(" (layer")[0] for line in upward] == [
        "main from anchorlens.cli",
        "anchorlens",
    ]
    assert private_crossings("anchorlens.sampling", source) == [
        "anchorlens.sampling imports anchorlens.errors._hidden at line 4",
        "anchorlens.sampling uses anchorlens.metrics._helper at line 6",
    ]
    assert upward_imports("anchorlens.cli", "from anchorlens.tasks import get_task\n") == []


#: The modules of the "experiments" layer: none may import from another (a helper two of them need moves down to
#: `anchorlens.metrics`, `anchorlens.regions`, `anchorlens.random_streams` or `anchorlens.experiments.common`).
EXPERIMENTS_LAYER = dict(LAYERS)["experiments"]


def sibling_imports(module: str, source: str | None = None) -> list[str]:
    """Imports of `module` from another module of the experiments layer (a sibling)."""
    return [
        f"{module} imports {imported if name is None else f'{name} from {imported}'} at line {line}"
        for line, imported, name in imports_of(module, source)
        if _target(imported) in EXPERIMENTS_LAYER and _target(imported) != module
    ]


def test_no_experiment_leans_on_a_sibling():
    leaning = [found for module in sorted(EXPERIMENTS_LAYER) for found in sibling_imports(module)]
    assert not leaning, "experiments importing from sibling experiments:\n" + "\n".join(leaning)
    # the check sees a sibling import, at the top or inside a function
    source = "def f():\n    from anchorlens.experiments.auroc import layer_auroc\n"
    assert sibling_imports("anchorlens.experiments.heads", source) == [
        "anchorlens.experiments.heads imports layer_auroc from anchorlens.experiments.auroc at line 2"
    ]


#: Calls that create a seeded random generator: only `anchorlens.random_streams` makes them.
GENERATOR_CALLS = {"default_rng", "RandomState", "Generator", "SeedSequence", "manual_seed", "seed", "Random"}


def generator_calls(module: str, source: str | None = None) -> list[str]:
    """``np.random.default_rng(...)``, ``torch.Generator()``, ``torch.manual_seed(...)``, ``random.Random(...)``
    and the like in `module`: attribute calls on numpy, torch or random (a method of a generator object, such
    as ``generator.permutation``, is not one)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8") if source is None else source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in GENERATOR_CALLS:
            owner = ast.unparse(node.func.value)
            if owner.split(".")[0] in {"np", "numpy", "torch", "random"} or owner.endswith("Generator()"):
                found.append(f"{module} line {node.lineno}: {ast.unparse(node.func)}")
    return found


def test_one_module_owns_every_seeded_random_stream():
    elsewhere = [
        found for module in sorted(set(MODULES) - {"anchorlens.random_streams"}) for found in generator_calls(module)
    ]
    assert not elsewhere, "seeded generators outside anchorlens.random_streams:\n" + "\n".join(elsewhere)
    assert generator_calls("anchorlens.random_streams")  # the check does see the ones there
    source = (
        "import numpy as np\nimport torch\ng = np.random.default_rng([1, 2])\nt = torch.Generator().manual_seed(0)\n"
    )
    assert generator_calls("anchorlens.sampling", source) == [
        "anchorlens.sampling line 3: np.random.default_rng",
        "anchorlens.sampling line 4: torch.Generator().manual_seed",
        "anchorlens.sampling line 4: torch.Generator",
    ]
