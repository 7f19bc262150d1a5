"""`anchorlens` command line: a thin layer over the public API. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
import warnings
from collections.abc import Collection, Iterable, Sequence

from anchorlens import paper
from anchorlens.catalog import declared
from anchorlens.errors import AnchorlensError

EXIT_USER_ERROR = 2
#: What a shell reports for a process ended by SIGPIPE (128 + 13): the reader of its output went away.
EXIT_BROKEN_PIPE = 141

#: The commands that run an experiment, with their one-line help, as each experiment's module declares them
#: (read from the source, `anchorlens.catalog`, so that `anchorlens tasks` imports no experiment). Their options
#: come from the experiment's config class.
RUN_COMMANDS = {name: entry.help for name, entry in declared().items()}

#: What every run command prints (after the first --help line).
RUN_PRINTS = (
    "It prints the summary means with 95% intervals (seed-level t over seeds, floored by the test inputs' "
    "error; with one seed over the test inputs alone), and writes the tables, figures and a README.md into --out."
)


def _cmd_models(args: argparse.Namespace) -> int:
    from anchorlens.models import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        default = "  [default]" if row["default"] else ""
        print(
            f"{row['name']}{default}\n  {row['description']}\n  prepend BOS: {row['prepend_bos']}; "
            f"installed: {row['installed']}; converted: {row['converted']}"
        )
    print(
        "\nAny official TransformerLens name (gpt2-xl, EleutherAI/gpt-j-6B, ...) or a local Hugging Face folder also "
        "works where the weights can be reached."
    )
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from anchorlens.tasks import get_task, list_tasks

    rows = []
    for name in list_tasks():
        task = get_task(name)
        rows.append(
            {
                "name": task.name,
                "classes": list(task.class_names),
                "label_words": list(task.label_words),
                "template": task.template,
                "demo_split": task.demo_split,
                "test_split": task.test_split,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        words = ", ".join(f"{c}={w!r}" for c, w in zip(row["classes"], row["label_words"]))
        print(
            f"{row['name']}: {len(row['classes'])} classes ({words})\n  template {row['template']!r}; "
            f"demonstrations from {row['demo_split']!r}, test split {row['test_split']!r}"
        )
    return 0


def _cmd_prompt(args: argparse.Namespace) -> int:
    from anchorlens.errors import InvalidConfigError
    from anchorlens.models import context_length, load_tokenizer, prepend_bos_for
    from anchorlens.prompts import build_prompt
    from anchorlens.sampling import sample_demonstrations, sample_test_set
    from anchorlens.tasks import get_task, load_split

    task = get_task(args.task)
    rows = load_split(task, task.test_split).num_rows
    if not 0 <= args.index < rows:
        raise InvalidConfigError(
            f"--index {args.index} is out of range: task {task.name!r} has {rows} test inputs (its "
            f"{task.test_split!r} split); use --index 0..{rows - 1}"
        )
    tokenizer = load_tokenizer(args.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        demonstrations, _ = sample_demonstrations(task, args.seed, shots_per_class=args.shots)
        query = sample_test_set(task, args.seed, n_test=args.index + 1)[args.index]
        prompt = build_prompt(
            tokenizer,
            task,
            demonstrations,
            query.text,
            query.label,
            prepend_bos=prepend_bos_for(args.model, tokenizer),
            example_index=query.index,
        )
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    context = context_length(args.model, getattr(args, "model_class", None))
    if context is not None and prompt.length > context:
        # Shown, not refused: looking at an over-long prompt is how one finds out how many shots fit.
        notes.append(
            f"this prompt is {prompt.length} tokens, longer than the {context}-token context of {args.model}: the "
            f"model cannot read it and every experiment refuses it; use fewer --shots (now {args.shots})"
        )
    view = prompt.to_dict(tokenizer, task.class_names)
    view.update(
        model=args.model,
        seed=args.seed,
        demonstration_rows=[d.index for d in demonstrations],
        query_row=query.index,
        warnings=notes,
    )
    for note in notes:  # on stderr, before the prompt: after a long prompt a note at the end is easy to miss
        print(f"anchorlens: warning: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(view, indent=2, ensure_ascii=False))
        return 0
    print(
        f"task {task.name}, model {args.model}, seed {args.seed}: {prompt.length} tokens; demonstrations are "
        f"{task.demo_split} rows {view['demonstration_rows']}, the query is {task.test_split} row {query.index}"
    )
    print("-" * 72)
    print(prompt.text)
    print("-" * 72)
    for name, positions in view["label_positions"].items():
        print(f"label positions {name:>12}: {positions}  (token {view['label_tokens'][name]!r})")
    print(f"target position: {prompt.target_position}  (token {view['tokens'][prompt.target_position]!r})")
    print(f"gold label: {view['query_label']}")
    if args.tokens:
        print("\npos  role          token")
        for position, (token, role) in enumerate(zip(view["tokens"], view["roles"])):
            print(f"{position:>4} {role:<13} {token!r}")
    return 0


def _option_form(annotation: object) -> tuple[type, str | None, tuple | None]:
    """(element type, nargs, choices) of a config field's annotation: ``X | None`` as X, ``tuple[X, ...]`` as
    one or more X, a ``Literal`` as a choice among its values."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        present = [argument for argument in arguments if argument is not type(None)]
        if len(present) == 1:
            return _option_form(present[0])
    elif origin is typing.Literal:
        return type(arguments[0]), None, arguments
    elif origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        kind, _, choices = _option_form(arguments[0])
        return kind, "+", choices
    elif annotation in (bool, int, float, str):
        return annotation, None, None
    raise TypeError(f"a config field of type {annotation!r} has no command-line form; give it flag=None")


def _default_text(field: dataclasses.Field) -> str:
    if field.metadata.get("default_text"):
        return field.metadata["default_text"]
    if isinstance(field.default, tuple):
        return " ".join(str(value) for value in field.default)
    return str(field.default)


def add_config_options(
    parser: argparse.ArgumentParser, config_class: type, names: Iterable[str] | None = None
) -> list[str]:
    """Add one option per field of `config_class` that has a flag (`anchorlens.experiments.common.setting`), or
    per field in `names`: type, nargs and choices from the field's annotation, default and help text from the
    field itself. Returns the fields added (argparse dests are the field names)."""
    from anchorlens.experiments.common import cli_flag

    wanted = None if names is None else set(names)
    hints = typing.get_type_hints(config_class)
    added = []
    for field in dataclasses.fields(config_class):
        flag = cli_flag(field)
        if flag is None or (wanted is not None and field.name not in wanted):
            continue
        text = f"{field.metadata['help']} (default: {_default_text(field)})"
        aliases = field.metadata.get("aliases", ())
        # A default factory is left to the config: the option's own default is None, meaning "not given".
        default = field.default if field.default is not dataclasses.MISSING else None
        kind, nargs, choices = _option_form(hints[field.name])
        if kind is bool:
            if default is not False:
                raise TypeError(
                    f"{config_class.__name__}.{field.name} defaults to {default!r}: a switch must default to False"
                )
            parser.add_argument(flag, *aliases, dest=field.name, action="store_true", help=text)
        else:
            parser.add_argument(
                flag,
                *aliases,
                dest=field.name,
                type=kind,
                nargs=nargs,
                choices=choices,
                default=list(default) if isinstance(default, tuple) else default,
                metavar=None if choices else flag.lstrip("-").replace("-", "_").upper(),
                help=text,
            )
        added.append(field.name)
    return added


def config_values(args: argparse.Namespace, config_class: type) -> dict:
    """The config fields set by options `add_config_options` made (lists as tuples; options left at None for a
    field with a default factory are left out, so the config fills them in)."""
    from anchorlens.experiments.common import cli_flag

    values = {}
    for field in dataclasses.fields(config_class):
        if cli_flag(field) is None or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if value is None and field.default is dataclasses.MISSING:
            continue
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return values


def _model_help(what: str) -> str:
    from anchorlens.models import DEFAULT_MODEL

    return f"{what} (default: {DEFAULT_MODEL}; `anchorlens models` lists the offline ones)"


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        "--tasks",
        dest="task",
        nargs="+",
        required=True,
        help="one or more tasks (see `anchorlens tasks`); --tasks is the same option",
    )
    parser.add_argument("--model", default=None, help=_model_help("model name or local Hugging Face folder"))
    parser.add_argument(
        "--model-class",
        choices=["hooked", "bridge"],
        default=None,
        help="TransformerLens class: TransformerBridge (the default with transformer-lens 4.x, the only class "
        "there) or HookedTransformer (the default with transformer-lens 3.9); bridge results are recorded under "
        "the model name MODEL:bridge",
    )
    parser.add_argument("--out", required=True, help="output folder; a rerun resumes what is finished there")
    parser.add_argument("--device", default=None, help="torch device (default: TransformerLens's choice)")
    _add_device_split_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--format",
        dest="image_format",
        choices=["png", "svg", "pdf"],
        default=None,
        help="also write each figure as a static png, svg or pdf (needs kaleido: pip install -U kaleido, then "
        "plotly_get_chrome); the HTML figures are always written",
    )


def _add_device_split_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-devices",
        type=int,
        default=1,
        help="split a model too big for one GPU over this many GPUs (docs/scaling.md)",
    )


def _run_experiment(args: argparse.Namespace, experiment: str) -> int:
    from pathlib import Path

    from anchorlens.orchestrate import run_prepared_experiment
    from anchorlens.preparation import prepare_run
    from anchorlens.registry import EXPERIMENTS

    spec = EXPERIMENTS[experiment]
    run = prepare_run(  # tasks, model name, folder, model, hooks: each checked once, before any work
        spec,
        args.model,
        args.task,
        spec.config_class(**config_values(args, spec.config_class)),
        args.out,
        device=args.device,
        n_devices=args.n_devices,
        model_class=args.model_class,
    )
    result = run_prepared_experiment(run, progress=not args.no_progress, image_format=args.image_format)
    if not run.process.is_main:
        return 0  # rank 0 prints the merged table once
    from anchorlens.answers import answer

    print(answer(result))
    out = Path(args.out)
    suffixes = ["html", *([args.image_format] if args.image_format else [])]
    figures = ", ".join(str(out / f"{stem}.{suffix}") for stem in spec.figure_stems() for suffix in suffixes)
    print(f"\nwrote {out / (experiment + '.csv')} (+ .parquet, _summary.csv), {figures}, {out / 'README.md'}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from anchorlens.reproduce import ReproduceConfig, reproduce

    report = reproduce(
        ReproduceConfig(**config_values(args, ReproduceConfig)),
        args.out,
        progress=not args.no_progress,
        device=args.device,
        n_devices=args.n_devices,
    )
    if _is_main_rank():
        print(f"wrote {report}")
    return 0


def _is_main_rank() -> bool:
    from anchorlens.distributed import process_from_env

    return process_from_env().is_main


class _ParagraphsHelpFormatter(argparse.HelpFormatter):
    """Wraps a description paragraph by paragraph (argparse's default joins the paragraphs into one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            super(_ParagraphsHelpFormatter, self)._fill_text(part, width, indent) for part in text.split("\n\n")
        )


def build_parser(wanted: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser. The options of the run commands and `reproduce` come from their config classes; they are
    added for the commands in `wanted` only (all when None), so that `anchorlens tasks` does not import every
    experiment."""
    parser = argparse.ArgumentParser(
        prog="anchorlens",
        description="Label words as anchors: information-flow analyses of in-context learning on TransformerLens.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command_parser(name: str, help_text: str, details: str = "", **options) -> argparse.ArgumentParser:
        """A subcommand whose --help starts with its one-line `help_text` (what it measures or shows)."""
        description = help_text[0].upper() + help_text[1:] + "." + (f"\n\n{details}" if details else "")
        options.setdefault("formatter_class", _ParagraphsHelpFormatter)
        return commands.add_parser(name, help=help_text, description=description, allow_abbrev=False, **options)

    models = command_parser("models", "list the offline models and how to use others")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(run=_cmd_models)

    tasks = command_parser("tasks", "list the tasks, templates and label words")
    tasks.add_argument("--json", action="store_true", help="print JSON")
    tasks.set_defaults(run=_cmd_tasks)

    prompt = command_parser("prompt", "show a seeded k-shot-per-class prompt and its tracked positions")
    prompt.add_argument("--task", required=True, help="task name (see `anchorlens tasks`)")
    prompt.add_argument("--model", default=None, help=_model_help("model whose tokenizer to use"))
    prompt.add_argument(
        "--seed",
        type=int,
        default=paper.SEEDS[0],
        help="seed of the demonstrations and of the test-set sample, as in the experiments' --seeds "
        f"(default: {paper.SEEDS[0]})",
    )
    prompt.add_argument("--shots", type=int, default=1, help="demonstrations per class")
    prompt.add_argument("--index", type=int, default=0, help="which test input of the seeded test set is the query")
    prompt.add_argument(
        "--json", action="store_true", help="print JSON (tokens, label_positions, target_position, ...)"
    )
    prompt.add_argument("--tokens", action="store_true", help="also list every token with its role")
    prompt.set_defaults(run=_cmd_prompt)

    for name, entry in declared().items():
        command = command_parser(name, entry.help, entry.details or RUN_PRINTS)
        _add_run_arguments(command)
        if wanted is None or name in wanted:
            from anchorlens.registry import EXPERIMENTS

            add_config_options(command, EXPERIMENTS[name].config_class)
        command.set_defaults(run=lambda args, experiment=name: _run_experiment(args, experiment))

    reproduce = command_parser(
        "reproduce", "run every analysis and method on one model, resumably, and write report.md (main job)"
    )
    if wanted is None or "reproduce" in wanted:
        from anchorlens.reproduce import ReproduceConfig, help_description

        reproduce.description = help_description()
        add_config_options(reproduce, ReproduceConfig)
    reproduce.add_argument(
        "--out", default="results/reproduce", help="output folder (a rerun resumes) (default: results/reproduce)"
    )
    reproduce.add_argument("--device", default=None, help="torch device (default: TransformerLens's choice)")
    _add_device_split_argument(reproduce)
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.set_defaults(run=_cmd_reproduce)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse settings that would otherwise fail with a traceback after the model has loaded (minutes later)."""
    from anchorlens.errors import InvalidConfigError

    image_format = getattr(args, "image_format", None)
    if image_format is not None:
        from anchorlens.plots import static_export_problem

        problem = static_export_problem(image_format)
        if problem is not None:
            raise InvalidConfigError(f"--format {image_format}: {problem}")
    device = getattr(args, "device", None)
    if device is not None:
        from anchorlens.models import check_device

        check_device(device)
    word_top_k = getattr(args, "word_top_k", None)
    if word_top_k is not None:
        from anchorlens.registry import EXPERIMENTS

        fields = dataclasses.fields(EXPERIMENTS[args.command].config_class)
        default = next(field.default for field in fields if field.name == "word_top_k")
        if word_top_k < 1:
            raise InvalidConfigError(f"--word-top-k must be at least 1, got {word_top_k} (default {default})")
        from anchorlens.models import vocabulary_size

        vocabulary = vocabulary_size(args.model)
        if vocabulary is not None and word_top_k > vocabulary:
            raise InvalidConfigError(
                f"--word-top-k {word_top_k} is more than the {vocabulary} tokens of {args.model}'s vocabulary; use "
                f"at most {vocabulary} (default {default})"
            )


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a warning as one ``anchorlens: warning: ...`` line on stderr (Python's default adds the category and
    the source line that raised it, which means nothing to a command-line user)."""
    text = " ".join(str(message).split())
    module = typing.cast(str, getattr(category, "__module__", ""))
    source = "" if module.startswith("anchorlens") or module == "builtins" else f" ({category.__name__})"
    print(f"anchorlens: warning: {text}{source}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((argument for argument in argv if not argument.startswith("-")), None)
    args = build_parser(wanted={command} if command else set()).parse_args(argv)
    if getattr(args, "model", "unset") is None:
        from anchorlens.models import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            _check_arguments(args)
            code = args.run(args)
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
            return code
    except BrokenPipeError:
        # The reader went away (`anchorlens prompt ... --json | head`): stop quietly, as Unix tools do. Point
        # stdout at /dev/null so the interpreter's own final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except AnchorlensError as error:
        print(f"anchorlens: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("anchorlens: interrupted; finished results are kept", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # a process group needs torch; commands without it stay fast
            from anchorlens.distributed import shutdown_distributed

            shutdown_distributed()


if __name__ == "__main__":
    sys.exit(main())
