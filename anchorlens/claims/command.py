"""``python analyses/claims.py FOLDER.. [--check|--write PAGE] [--short FULL]``: print, check or write the
claims (`anchorlens.claims` states the rules)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from anchorlens.claims.blocks import check_block, write_block
from anchorlens.claims.inputs import Results, prediction_spread
from anchorlens.claims.report import all_claims, coverage, render, render_short
from anchorlens.errors import AnchorlensError

#: The help's first line (the package `anchorlens.claims` states the rules in its docstring).
DESCRIPTION = (
    "Judge the paper's findings on our results: one row per finding and model, with the paper's number, ours "
    "with its 95% interval, and a verdict decided by the rules of anchorlens.claims, never by hand."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the claims of the folders in `argv`, or check or write a page's block of them; the exit status:
    0, 1 when a checked block is stale, 2 on bad input (a one-line error)."""
    parser = argparse.ArgumentParser(
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="+", help="results folders, e.g. docs/results/smollm2-135m")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", metavar="README", help="exit 1 (with a diff) when README's claims block is stale")
    mode.add_argument("--write", metavar="README", help="replace README's claims block with the claims printed now")
    parser.add_argument(
        "--short",
        metavar="FULL",
        help="one row per finding, a column per model, linking to FULL (the file holding the full form, "
        "e.g. docs/results.md) for the checks that do not hold: the README's form",
    )
    args = parser.parse_args(argv)
    command = " ".join(["python analyses/claims.py", *args.folders])
    try:
        results = Results.read(args.folders)
        found, covered = all_claims(results), coverage(results)
        printed = (
            render_short(found, command, args.short, covered)
            if args.short
            else render(found, command, covered, prediction_spread(results))
        )
        if args.check:
            return check_block(Path(args.check), printed)
        if args.write:
            write_block(Path(args.write), printed)
            print(f"{args.write}: claims block written")
            return 0
    except AnchorlensError as error:
        print(f"claims.py: error: {error}", file=sys.stderr)
        return 2
    print(printed, end="")
    return 0
