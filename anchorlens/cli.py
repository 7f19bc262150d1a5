"""`anchorlens` command line: a thin layer over the public API. Errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

from anchorlens.errors import AnchorlensError

EXIT_USER_ERROR = 2


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
        )
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    context = context_length(args.model)
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


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", nargs="+", required=True, help="one or more tasks (see `anchorlens tasks`)")
    parser.add_argument("--model", default=None, help="model name (default: the default offline model)")
    parser.add_argument(
        "--model-class",
        choices=["hooked", "bridge"],
        default="hooked",
        help="TransformerLens class: HookedTransformer (default) or TransformerBridge; bridge results "
        "are recorded under the model name MODEL:bridge",
    )
    parser.add_argument("--n-test", type=int, default=200, help="test inputs per seed (default 200; paper 1000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="seeds (paper: 42 43 44 45 46)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shots", type=int, default=1, help="demonstrations per class")
    parser.add_argument("--out", required=True, help="output folder; a rerun resumes what is finished there")
    parser.add_argument("--device", default=None, help="torch device (default: TransformerLens's choice)")
    _add_device_split_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_device_split_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-devices",
        type=int,
        default=1,
        help="split a model too big for one GPU over this many GPUs (docs/scaling.md)",
    )


def _run_experiment(args: argparse.Namespace, experiment: str) -> int:
    from pathlib import Path

    from anchorlens.distributed import init_distributed, place_rank
    from anchorlens.experiments import EXPERIMENTS, run_experiment
    from anchorlens.models import DEFAULT_MODEL, expected_recorded_name, load_model
    from anchorlens.runs import check_folder
    from anchorlens.tasks import get_task

    spec = EXPERIMENTS[experiment]
    tasks = [get_task(name) for name in args.task]  # unknown tasks fail before the model loads
    extra = {field: getattr(args, field) for field in spec.cli_fields}
    recorded = expected_recorded_name(args.model or DEFAULT_MODEL, args.model_class)
    config = spec.config_class(
        model=recorded,
        seeds=tuple(args.seeds),
        n_test=args.n_test,
        batch_size=args.batch_size,
        shots_per_class=args.shots,
        **extra,
    )
    check_folder(args.out, experiment, config.signature())  # before the model loads (seconds), not after
    process = init_distributed()  # a no-op unless launched by torchrun / accelerate launch
    device = place_rank(process, args.device, n_devices=args.n_devices)
    model = load_model(args.model, device=device, n_devices=args.n_devices, model_class=args.model_class)
    result = run_experiment(experiment, model, tasks, config, args.out, progress=not args.no_progress)
    if not process.is_main:
        return 0  # rank 0 prints the merged table once
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    out = Path(args.out)
    print(f"\nwrote {out / (experiment + '.csv')} (+ .parquet), {out / (experiment + '.html')}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from anchorlens.reproduce import ReproduceConfig, reproduce

    fields = {
        "model": args.model,
        "tasks": tuple(args.tasks),
        "seeds": tuple(args.seeds),
        "n_test": args.n_test,
        "batch_size": args.batch_size,
    }
    if args.experiments:
        fields["experiments"] = tuple(args.experiments)
    report = reproduce(
        ReproduceConfig(**fields), args.out, progress=not args.no_progress, device=args.device, n_devices=args.n_devices
    )
    if _is_main_rank():
        print(f"wrote {report}")
    return 0


def _is_main_rank() -> bool:
    from anchorlens.distributed import process_from_env

    return process_from_env().is_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anchorlens",
        description="Label words as anchors: information-flow analyses of in-context learning on TransformerLens.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    models = commands.add_parser("models", help="list the offline models and how to use others")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(run=_cmd_models)

    tasks = commands.add_parser("tasks", help="list the tasks, templates and label words")
    tasks.add_argument("--json", action="store_true", help="print JSON")
    tasks.set_defaults(run=_cmd_tasks)

    prompt = commands.add_parser("prompt", help="show a seeded k-shot-per-class prompt and its tracked positions")
    prompt.add_argument("--task", required=True, help="task name (see `anchorlens tasks`)")
    prompt.add_argument("--model", default=None, help="model whose tokenizer to use (default: the default model)")
    prompt.add_argument("--seed", type=int, default=42)
    prompt.add_argument("--shots", type=int, default=1, help="demonstrations per class")
    prompt.add_argument("--index", type=int, default=0, help="which test input of the seeded test set is the query")
    prompt.add_argument(
        "--json", action="store_true", help="print JSON (tokens, label_positions, target_position, ...)"
    )
    prompt.add_argument("--tokens", action="store_true", help="also list every token with its role")
    prompt.set_defaults(run=_cmd_prompt)

    saliency = commands.add_parser(
        "saliency", help="saliency information flow S_wp, S_pq, S_ww per layer (paper Fig. 3)"
    )
    _add_run_arguments(saliency)
    saliency.add_argument("--abs-per-head", action="store_true", help="use sum_h |A*dL/dA| instead of |sum_h A*dL/dA|")
    saliency.set_defaults(run=lambda args: _run_experiment(args, "saliency"))

    isolation = commands.add_parser(
        "isolation", help="isolate label words in the first/last k layers: loyalty (Fig. 4)"
    )
    _add_run_arguments(isolation)
    isolation.add_argument(
        "--k",
        type=int,
        nargs="+",
        default=[1, 3, 5, 7],
        help="isolated layer counts (default: the paper's 1 3 5 7; main result 5)",
    )
    isolation.add_argument("--word-top-k", type=int, default=5, help="top-k tokens compared by word loyalty")
    isolation.set_defaults(run=lambda args: _run_experiment(args, "isolation"))

    auroc = commands.add_parser("auroc", help="per-layer AUROC of target->label attention vs prediction, R_l (Fig. 5)")
    _add_run_arguments(auroc)
    auroc.set_defaults(run=lambda args: _run_experiment(args, "auroc"))

    diagnose = commands.add_parser("diagnose", help="predicted vs true confusion from label-word key geometry (Fig. 6)")
    _add_run_arguments(diagnose)
    diagnose.add_argument("--layer", type=int, default=None, help="layer (default: two thirds of the depth)")
    diagnose.set_defaults(run=lambda args: _run_experiment(args, "diagnose"))

    reweight = commands.add_parser(
        "reweight", help="anchor re-weighting vs vanilla ICL and contextual calibration (Table 1)"
    )
    _add_run_arguments(reweight)
    reweight.add_argument("--extra-per-class", type=int, default=4, help="training examples per class for beta")
    reweight.add_argument("--learning-rate", type=float, default=0.01)
    reweight.add_argument("--epochs", type=int, default=10)
    reweight.add_argument(
        "--variant",
        choices=["pattern", "scores"],
        default="pattern",
        help="pattern: exp(beta) times the attention (paper); scores: beta added before softmax",
    )
    reweight.set_defaults(run=lambda args: _run_experiment(args, "reweight"))

    compress = commands.add_parser(
        "compress", help="anchor-only context compression: loyalty, accuracy, speed-up (Tables 2-3)"
    )
    _add_run_arguments(compress)
    compress.add_argument("--word-top-k", type=int, default=5, help="top-k tokens compared by word loyalty")
    compress.add_argument("--random-draws", type=int, default=20, help="Hidden_random draws for Hidden_random-top")
    compress.set_defaults(run=lambda args: _run_experiment(args, "compress"))

    reproduce = commands.add_parser(
        "reproduce", help="run every analysis and method on one model, resumably, and write report.md (main job)"
    )
    reproduce.add_argument("--model", default=None, help="model name (default: the default offline model)")
    reproduce.add_argument("--tasks", nargs="+", default=["sst2", "agnews", "trec", "emoc"])
    reproduce.add_argument("--seeds", type=int, nargs="+", default=[42], help="seeds (paper: 42 43 44 45 46)")
    reproduce.add_argument("--n-test", type=int, default=20, help="test inputs per task and seed (paper: 1000)")
    reproduce.add_argument("--batch-size", type=int, default=8)
    reproduce.add_argument("--experiments", nargs="+", default=None, help="a subset of the experiments")
    reproduce.add_argument("--out", default="results/reproduce", help="output folder (a rerun resumes)")
    reproduce.add_argument("--device", default=None, help="torch device (default: TransformerLens's choice)")
    _add_device_split_argument(reproduce)
    reproduce.add_argument("--no-progress", action="store_true")
    reproduce.set_defaults(run=_cmd_reproduce)
    return parser


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse settings that would otherwise fail with a traceback after the model has loaded (minutes later)."""
    from anchorlens.errors import InvalidConfigError

    device = getattr(args, "device", None)
    if device is not None:
        from anchorlens.models import check_device

        check_device(device)
    word_top_k = getattr(args, "word_top_k", None)
    if word_top_k is not None:
        if word_top_k < 1:
            raise InvalidConfigError(f"--word-top-k must be at least 1, got {word_top_k} (default 5)")
        from anchorlens.models import vocabulary_size

        vocabulary = vocabulary_size(args.model)
        if vocabulary is not None and word_top_k > vocabulary:
            raise InvalidConfigError(
                f"--word-top-k {word_top_k} is more than the {vocabulary} tokens of {args.model}'s vocabulary; use "
                f"at most {vocabulary} (default 5)"
            )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "model", "unset") is None:
        from anchorlens.models import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
    try:
        _check_arguments(args)
        return args.run(args)
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
