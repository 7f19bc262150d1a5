"""What the paper reports (Wang et al., EMNLP 2023; SPEC §7), for reports that put our numbers beside it, and
how its tables name tasks and methods. The one place for these constants: experiments, reports, figures and
the analyses scripts read them from here."""

from __future__ import annotations

#: The paper's four tasks, in the order anchorlens registers and runs them (`anchorlens reproduce`'s default).
TASKS = ("sst2", "agnews", "trec", "emoc")

#: The paper's five seeds (each a demonstration set and test sample); anchorlens's defaults take the first few.
SEEDS = (42, 43, 44, 45, 46)

#: The paper's test inputs per task and seed.
N_TEST = 1000


def seeds_text(seeds: tuple[int, ...] = SEEDS) -> str:
    """Seeds as a user types them after ``--seeds`` (``"42 43 44 45 46"``), for help texts and messages."""
    return " ".join(map(str, seeds))


#: The paper's name for each task, in the column order of its tables.
TASK_LABELS = {"sst2": "SST-2", "trec": "TREC", "agnews": "AGNews", "emoc": "EmoC"}


def task_rank(task: str) -> int:
    """Where `task` stands in the paper's column order; tasks the paper does not have follow, in a tie."""
    order = list(TASK_LABELS)
    return order.index(task) if task in order else len(order)


#: Table 1's rows (re-weighting), with the training-free baseline anchorlens adds.
REWEIGHT_METHOD_LABELS = {
    "vanilla_1shot": "Vanilla ICL (1-shot per class)",
    "vanilla_5shot": "Vanilla ICL (5-shot per class; AGNews 3)",
    "reweight": "Anchor re-weighting (1-shot per class)",
    "contextual_calibration": "Contextual calibration (1-shot per class)",
}

#: Table 2's rows (context compression), as the paper spells them.
COMPRESS_METHOD_LABELS = {
    "icl": "ICL",
    "text_anchor": "Text_anchor",
    "hidden_random": "Hidden_random",
    "hidden_random_top": "Hidden_random-top",
    "hidden_anchor": "Hidden_anchor",
}

#: Fig. 4's numbers of isolated layers (first or last k); a model shallower than 7 layers runs those it has.
ISOLATION_K = (1, 3, 5, 7)
#: Fig. 4's main result (§2.2's text): isolation in the first or last 5 layers.
ISOLATION_MAIN_K = 5
#: GPT2-XL's layers: the paper's main k = 5 is 5/48 of its depth (isolation at a depth fraction).
GPT2_XL_LAYERS = 48

#: Table 1, GPT2-XL, accuracy %, mean of 5 seeds.
REWEIGHT_TABLE = {
    "vanilla_1shot": {"sst2": 61.28, "trec": 57.56, "agnews": 73.32, "emoc": 15.44, "Avg": 51.90},
    "vanilla_5shot": {"sst2": 64.75, "trec": 60.40, "agnews": 52.52, "emoc": 9.80, "Avg": 46.87},
    "reweight": {"sst2": 90.07, "trec": 60.92, "agnews": 81.94, "emoc": 41.64, "Avg": 68.64},
}

#: Table 2, average of the 4 tasks: (label loyalty, word loyalty, accuracy) %.
COMPRESS_TABLE = {
    "GPT2-XL": {
        "icl": (100, 100, 51.90),
        "text_anchor": (51.05, 36.65, 38.77),
        "hidden_random": (48.96, 5.59, 39.96),
        "hidden_random_top": (57.52, 4.49, 41.72),
        "hidden_anchor": (79.47, 62.17, 45.04),
    },
    "GPT-J": {
        "icl": (100, 100, 56.82),
        "text_anchor": (53.45, 43.85, 40.83),
        "hidden_random": (49.03, 2.16, 31.51),
        "hidden_random_top": (71.10, 11.36, 52.34),
        "hidden_anchor": (89.06, 75.04, 55.59),
    },
}

#: Table 3, Hidden_anchor speed-up per task.
COMPRESS_SPEEDUP = {
    "GPT2-XL": {"sst2": 1.1, "trec": 1.5, "agnews": 2.5, "emoc": 1.4},
    "GPT-J": {"sst2": 1.5, "trec": 2.2, "agnews": 2.9, "emoc": 1.9},
}
