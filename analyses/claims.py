"""Judge the paper's findings on our results: one row per finding and model, with the paper's number, ours with
its 95% interval, and a verdict decided by rules, never by hand. The rules and their code are the package
`anchorlens.claims` (``from anchorlens.claims import judge`` in a notebook); this script is its command line.

    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m
    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m --check docs/results.md
    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m --write docs/results.md
    python analyses/claims.py docs/results/smollm2-135m docs/results/gemma-3-270m --short docs/results.md \\
        --write README.md
"""

from __future__ import annotations

import sys

from anchorlens.claims import main

if __name__ == "__main__":
    sys.exit(main())
