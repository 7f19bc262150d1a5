"""Paper Table 2 (and Table 3's speed-up): anchor-only context compression versus full ICL, label loyalty /
word loyalty / accuracy per method averaged over tasks, on each offline model."""

import warnings
from pathlib import Path

from _common import parser

from anchorlens.experiments.compress import CompressConfig, CompressResult, plot_compress, run_compress
from anchorlens.models import load_model
from anchorlens.plots import save_figure

cli = parser(__doc__)
cli.add_argument("--random-draws", type=int, default=20, help="Hidden_random-top is the best of this many draws")
cli.add_argument("--word-top-k", type=int, default=5)
args = cli.parse_args()
for model_name in args.models:
    config = CompressConfig(model=model_name, seeds=tuple(args.seeds), n_test=args.n_test, batch_size=args.batch_size,
                            random_draws=args.random_draws, word_top_k=args.word_top_k)
    out = Path(args.out) / model_name
    model = load_model(model_name)
    with warnings.catch_warnings():
        warnings.filterwarnings("once", message="label word")
        for task in args.tasks:
            run_compress(model, task, config, out=out)
    result = CompressResult.from_folder(out, config)
    result.save(out)
    save_figure(plot_compress(result), out / "compress")
    print(f"{model_name}:")
    print(result.paper_table().to_string(float_format=lambda v: f"{v:.2f}"))
