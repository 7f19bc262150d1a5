"""Paper Table 1: anchor re-weighting (1-shot per class) against vanilla ICL with 1 and 5 demonstrations per class
(AGNews 3) and contextual calibration, accuracy on each offline model."""

from _common import config_for, model_folder, parser

from anchorlens.experiments import ReweightConfig
from anchorlens.orchestrate import run_experiment

args = parser(__doc__, ReweightConfig).parse_args()
for model in args.models:
    config = config_for(args, ReweightConfig, model)
    result = run_experiment("reweight", model, args.tasks, config, model_folder(args.out, model))
    print(f"{model}: accuracy (%), mean of seeds {', '.join(map(str, config.seeds))}")
    print(result.paper_table().to_string(float_format=lambda v: f"{v:.2f}"))
