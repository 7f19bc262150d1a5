"""Paper Fig. 5: per-layer AUROC of target→label-word attention against the prediction, and R_l, on each
offline model."""

from _common import config_for, model_folder, parser

from anchorlens.experiments import AurocConfig
from anchorlens.orchestrate import run_experiment

args = parser(__doc__, AurocConfig).parse_args()
for model in args.models:
    config = config_for(args, AurocConfig, model)
    result = run_experiment("auroc", model, args.tasks, config, model_folder(args.out, model))
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
