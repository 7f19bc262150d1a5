"""Paper Table 2 (and Table 3's speed-up): anchor-only context compression versus full ICL, label loyalty /
word loyalty / accuracy per method averaged over tasks, on each offline model."""

from _common import model_folder, parser

from anchorlens.experiments import CompressConfig, run_experiment

cli = parser(__doc__)
cli.add_argument("--random-draws", type=int, default=20, help="Hidden_random-top is the best of this many draws")
cli.add_argument("--word-top-k", type=int, default=5)
args = cli.parse_args()
for model in args.models:
    config = CompressConfig(
        model=model,
        seeds=tuple(args.seeds),
        n_test=args.n_test,
        batch_size=args.batch_size,
        random_draws=args.random_draws,
        word_top_k=args.word_top_k,
    )
    result = run_experiment("compress", model, args.tasks, config, model_folder(args.out, model))
    print(f"{model}:")
    print(result.paper_table().to_string(float_format=lambda v: f"{v:.2f}"))
