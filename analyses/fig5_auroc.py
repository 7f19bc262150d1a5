"""Paper Fig. 5: per-layer AUROC of target→label-word attention against the prediction, and R_l, on each
offline model."""

from _common import model_folder, parser

from anchorlens.experiments import AurocConfig, run_experiment

args = parser(__doc__).parse_args()
for model in args.models:
    config = AurocConfig(model=model, seeds=tuple(args.seeds), n_test=args.n_test, batch_size=args.batch_size)
    result = run_experiment("auroc", model, args.tasks, config, model_folder(args.out, model))
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
