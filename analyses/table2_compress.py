"""Paper Table 2 (and Table 3's speed-up): anchor-only context compression versus full ICL, label loyalty /
word loyalty / accuracy per method averaged over tasks, on each offline model."""

from _common import config_for, model_folder, parser

from anchorlens.experiments import CompressConfig
from anchorlens.orchestrate import run_experiment

args = parser(__doc__, CompressConfig).parse_args()
for model in args.models:
    config = config_for(args, CompressConfig, model)
    result = run_experiment("compress", model, args.tasks, config, model_folder(args.out, model))
    print(f"{model}:")
    print(result.paper_table().to_string(float_format=lambda v: f"{v:.2f}"))
