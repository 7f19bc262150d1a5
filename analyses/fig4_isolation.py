"""Paper Fig. 4: label and word loyalty when label words (or random words) are isolated in the first or last
k layers, on each offline model."""

from _common import model_folder, parser

from anchorlens.experiments import IsolationConfig, run_experiment

cli = parser(__doc__)
cli.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 7])
args = cli.parse_args()
for model in args.models:
    config = IsolationConfig(
        model=model, seeds=tuple(args.seeds), n_test=args.n_test, batch_size=args.batch_size, k=tuple(args.k)
    )
    result = run_experiment("isolation", model, args.tasks, config, model_folder(args.out, model))
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
