"""The benchmark script runs end to end (on a tiny local model) and reports every ratio it promises."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "benchmarks" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("anchorlens_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_reports_every_ratio(tiny_folder, tmp_path, capsys):
    bench = load_bench()
    assert (
        bench.main(
            [
                "--model",
                str(tiny_folder),
                "--tasks",
                "sst2",
                "--n-prompts",
                "4",
                "--repeats",
                "1",
                "--batch-size",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / f"bench-{Path(tiny_folder).name}.json").read_text())
    saliency, forward, compression, memory = (
        report[key]["sst2"] for key in ("saliency", "forward_only", "compression", "memory")
    )
    ratios = [
        saliency["ratio_batched_to_floor"],
        saliency["speedup_batched_over_one_at_a_time"],
        forward["ratio_auroc_to_bare_forward"],
        forward["ratio_isolated_forward_to_bare_forward"],
        forward["isolation_experiment_in_bare_forwards"],
        forward["isolation_experiment_paper_k_in_bare_forwards"],
        compression["speedup_hidden_anchor"],
        compression["ideal_token_ratio"],
        saliency["reference_protocol"]["speedup_anchorlens_over_reference"],
        saliency["reference_protocol"]["prompts_per_second"],
    ]
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    assert compression["mean_prompt_tokens"] > compression["mean_query_tokens"]
    assert (
        1
        < forward["isolation_paper_k_layer_passes_in_forwards"]
        <= forward["isolation_paper_k_layer_passes_in_forwards_unshared"]
    )
    assert compression["paper_speedup"] == {"GPT2-XL": 1.1, "GPT-J": 1.5}
    assert compression["query_only"] == compression["seconds_per_input"]["query_only"] > 0
    assert compression["hidden_anchor_over_query_only"] == pytest.approx(
        compression["seconds_per_input"]["hidden_anchor"] / compression["query_only"]
    )
    assert memory["saliency_peak_mib"] >= 0 and memory["prompt_tokens"] > 0
    reweight = report["reweight_eval"]["sst2"]
    assert reweight["mean_prompt_tokens_5shot"] > reweight["mean_prompt_tokens_1shot"]
    assert all(math.isfinite(reweight[f"speedup_cached_demonstrations_{k}"]) for k in ("1shot", "5shot"))
    printed = capsys.readouterr().out
    assert "| sst2 |" in printed and "re-weighting evaluation speed-up" in printed
    assert "Hidden_anchor ÷ query only" in printed


def test_compression_profile_compares_hidden_anchor_with_its_floor(tiny_folder, tmp_path):
    """benchmarks/profile_compress.py (issue 16.1's profile) runs end to end and ranks operators for both sides."""
    spec = importlib.util.spec_from_file_location("anchorlens_profile", BENCH.parent / "profile_compress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    options = ["--model", str(tiny_folder), "--task", "sst2", "--n-prompts", "4", "--batch-size", "2"]
    module.main([*options, "--rounds", "1", "--top", "3", "--out", str(tmp_path)])
    report = json.loads((tmp_path / f"profile-compress-{Path(tiny_folder).name}-sst2.json").read_text())
    assert math.isfinite(report["hidden_anchor_over_query_only"]) and report["hidden_anchor_over_query_only"] > 0
    for side in ("hidden_anchor", "query_only"):
        operators = report["top_operators"][side]
        assert len(operators) == 3 and operators[0]["self_cpu_seconds_per_round"] > 0
        assert [row["self_cpu_seconds_per_round"] for row in operators] == sorted(
            (row["self_cpu_seconds_per_round"] for row in operators), reverse=True
        )


def test_hook_overhead_times_the_three_forwards(tiny_folder):
    """benchmarks/hook_overhead.py runs end to end and reports each forward against the bare one."""
    spec = importlib.util.spec_from_file_location("anchorlens_hooks_bench", BENCH.parent / "hook_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ratios = module.main(["--model", str(tiny_folder), "--n-prompts", "2", "--rounds", "1"])
    assert set(ratios) == {"bare", "isolated", "do_nothing_hooks"} and ratios["bare"] == 1.0
    assert all(math.isfinite(ratio) and ratio > 0 for ratio in ratios.values())


def test_summary_benchmark_times_every_saved_summary(llama_like, tmp_path, capsys):
    """benchmarks/summaries.py reads saved results back and times each bootstrap summary it finds, rows and all."""
    from anchorlens.experiments import AurocConfig, SaliencyConfig, run_auroc, run_saliency

    spec = importlib.util.spec_from_file_location("anchorlens_summaries_bench", BENCH.parent / "summaries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path / "results"
    for result in (
        run_saliency(llama_like, "sst2", SaliencyConfig(seeds=(1, 2), n_test=4, batch_size=2), progress=False),
        run_auroc(llama_like, "trec", AurocConfig(seeds=(1, 2), n_test=6, batch_size=3), progress=False),
    ):
        result.save(folder)
    out = tmp_path / "summaries.json"
    assert module.main([str(folder), "--repeats", "1", "--out", str(out)]) == 0
    timings = json.loads(out.read_text())["folders"][str(folder)]
    assert set(timings) == {"saliency", "saliency differences", "auroc"}
    assert timings["saliency"]["examples"] > 0 and timings["saliency"]["seeds"] == 2
    # Three flows per layer, and three metrics (auroc, R, excess) per layer.
    n_layers = llama_like.cfg.n_layers
    assert timings["saliency"]["summary_rows"] == timings["auroc"]["summary_rows"] == 3 * n_layers
    assert all(math.isfinite(t["seconds"]) and t["seconds"] > 0 for t in timings.values())
    assert "| results | saliency differences | 1 × 2 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "empty"), "--out", str(out)])


# ------------------------------------------------------------------------------------ the main job's time


def load_reproduce_time():
    spec = importlib.util.spec_from_file_location("reproduce_time", ROOT / "benchmarks" / "reproduce_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timing_record(folder: Path, commit: str, started: str, seconds: float, options=(), dirty=False) -> None:
    record = {
        "commit": commit,
        "uncommitted_changes": dirty,
        "options": list(options),
        "started": started,
        "seconds": seconds,
        "peak_rss_bytes": 3 * 2**30,
        "machine": {"cpu_count": 2, "processor": "x86_64"},
        "versions": {"transformer-lens": "4.3.0"},
        "model_class": "bridge",
        "seconds_per_experiment": {"saliency": 70.4, "isolation": 360.0},
    }
    name = f"reproduce-{commit}{'-options' if options else ''}.json"
    (folder / name).write_text(json.dumps(record))


def test_the_main_job_line_is_the_newest_record_at_the_defaults(tmp_path):
    timing = load_reproduce_time()
    assert timing.main_job_line(tmp_path).startswith("The main job's time awaits a record")
    timing_record(tmp_path, "aaaaaaa", "2026-12-01T10:00:00+00:00", 1000.0)
    timing_record(tmp_path, "bbbbbbb", "2026-12-02T10:00:00+00:00", 900.4)
    # Newer, but not the main job: a run with options, or one made from a work tree with uncommitted changes.
    timing_record(tmp_path, "ccccccc", "2026-12-03T10:00:00+00:00", 5.0, options=["--n-test", "2"])
    timing_record(tmp_path, "ddddddd", "2026-12-04T10:00:00+00:00", 7.0, dirty=True)
    line = timing.main_job_line(tmp_path)
    assert line.startswith("At commit bbbbbbb (transformer-lens 4.3.0, bridge) the main job took 900 s on 2 CPU cores")
    assert "(saliency 70 s, isolation 360 s), peak resident memory 3.0 GiB" in line
    assert "reproduce-bbbbbbb.json" in line
    short = timing.main_job_line(tmp_path, short=True)
    assert short.startswith("Main job at commit bbbbbbb (transformer-lens 4.3.0, bridge): 900 s on 2 CPU cores, peak")
    assert "peak memory 3.0 GiB ([record](" in short and "saliency" not in short


@pytest.mark.parametrize(
    "options", [["--short", f"--check={ROOT / 'README.md'}"], [f"--check={ROOT / 'docs/reproduce.md'}"]]
)
def test_the_pages_main_job_line_is_the_newest_records(options, capsys):
    timing = load_reproduce_time()
    assert timing.main(options) == 0, capsys.readouterr().out


def test_the_package_keeps_the_newest_records_time(tmp_path):
    """``anchorlens reproduce --help`` quotes the package's copy of the newest record: the copy is that record's
    (or both are absent), and its essentials come from the record."""
    from anchorlens.reproduce import measured_main_job

    timing = load_reproduce_time()
    assert timing.package_record(ROOT / "benchmarks" / "results") == measured_main_job()
    timing_record(tmp_path, "aaaaaaa", "2026-12-01T10:00:00+00:00", 471.2)
    essentials = timing.package_record(tmp_path)
    assert essentials is not None
    assert (essentials["commit"], essentials["seconds"], essentials["cpu_count"]) == ("aaaaaaa", 471.2, 2)
    assert (essentials["transformer_lens"], essentials["model_class"]) == ("4.3.0", "bridge")
