"""Print, check or write docs/results.md's block of where each committed part ran (device, model class, torch,
transformer-lens) and what the committed comparison records say of how closely parts agree: generated from the
part records and the records in benchmarks/results (`anchorlens.claims.provenance`), never written by hand.

    python analyses/provenance.py docs/results/smollm2-135m docs/results/gemma-3-270m
    python analyses/provenance.py docs/results/smollm2-135m docs/results/gemma-3-270m --check docs/results.md
    python analyses/provenance.py docs/results/smollm2-135m docs/results/gemma-3-270m --write docs/results.md

The block sits between ``<!-- provenance:start -->`` and ``<!-- provenance:end -->``; ``--check`` exits 1 with a
diff when it differs from what is printed now, ``--write`` replaces it.
"""

from __future__ import annotations

import sys

from anchorlens.claims.provenance import main

if __name__ == "__main__":
    sys.exit(main())
