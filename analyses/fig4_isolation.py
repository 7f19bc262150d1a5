"""Paper Fig. 4: label and word loyalty when label words (or random words) are isolated in the first or last
k layers, on each offline model."""

from _common import config_for, model_folder, parser

from anchorlens.experiments import IsolationConfig
from anchorlens.orchestrate import run_experiment

args = parser(__doc__, IsolationConfig).parse_args()
for model in args.models:
    config = config_for(args, IsolationConfig, model)
    result = run_experiment("isolation", model, args.tasks, config, model_folder(args.out, model))
    print(result.summary().to_string(index=False, float_format=lambda v: f"{v:.3f}"))
