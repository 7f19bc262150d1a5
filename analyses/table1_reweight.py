"""Paper Table 1: anchor re-weighting (1-shot per class) against vanilla ICL with 1 and 5 demonstrations per class
(AGNews 3) and contextual calibration, accuracy on each offline model."""

import warnings
from pathlib import Path

from _common import parser

from anchorlens.experiments.reweight import ReweightConfig, ReweightResult, plot_reweight, run_reweight
from anchorlens.models import load_model
from anchorlens.plots import save_figure
from anchorlens.tasks import get_task

args = parser(__doc__).parse_args()
tasks = [get_task(task) for task in args.tasks]  # unknown tasks fail before a model loads
for model_name in args.models:
    config = ReweightConfig(model=model_name, seeds=tuple(args.seeds), n_test=args.n_test, batch_size=args.batch_size)
    out = Path(args.out) / model_name
    model = load_model(model_name)
    with warnings.catch_warnings():
        warnings.filterwarnings("once", message="label word")
        for task in tasks:
            run_reweight(model, task, config, out=out)
    result = ReweightResult.from_folder(out, config)
    result.save(out)
    save_figure(plot_reweight(result), out / "reweight")
    print(f"{model_name}: accuracy (%), mean of seeds {', '.join(map(str, config.seeds))}")
    print(result.paper_table().to_string(float_format=lambda v: f"{v:.2f}"))
