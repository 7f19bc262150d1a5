"""Paper Fig. 6: predicted confusion from label-word key distances beside the true confusion (AUROC), on each
offline model."""

from _common import model_folder, parser

from anchorlens.experiments import DiagnoseConfig, run_experiment

cli = parser(__doc__)
cli.add_argument("--layer", type=int, default=None, help="layer (default: two thirds of the depth)")
args = cli.parse_args()
for model in args.models:
    config = DiagnoseConfig(
        model=model, seeds=tuple(args.seeds), n_test=args.n_test, batch_size=args.batch_size, layer=args.layer
    )
    result = run_experiment("diagnose", model, args.tasks, config, model_folder(args.out, model))
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
