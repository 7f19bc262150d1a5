"""Paper Fig. 6: predicted confusion from label-word key distances beside the true confusion (AUROC), on each
offline model."""

from _common import config_for, model_folder, parser

from anchorlens.experiments import DiagnoseConfig
from anchorlens.orchestrate import run_experiment

args = parser(__doc__, DiagnoseConfig).parse_args()
for model in args.models:
    config = config_for(args, DiagnoseConfig, model)
    result = run_experiment("diagnose", model, args.tasks, config, model_folder(args.out, model))
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
