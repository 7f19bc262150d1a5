"""Paper Fig. 3: saliency information flow S_wp / S_pq / S_ww per layer, on each offline model."""

from _common import config_for, model_folder, parser

from anchorlens.experiments import SaliencyConfig
from anchorlens.orchestrate import run_experiment

args = parser(__doc__, SaliencyConfig).parse_args()
for model in args.models:
    config = config_for(args, SaliencyConfig, model)
    result = run_experiment("saliency", model, args.tasks, config, model_folder(args.out, model))
    print(result.depth_summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
