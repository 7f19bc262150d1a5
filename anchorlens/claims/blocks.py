"""The generated blocks of a Markdown page (between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``):
check that one is what a script prints now, or replace it."""

from __future__ import annotations

import difflib
from pathlib import Path

from anchorlens.errors import DataFileError


def split_block(text: str, path: Path, name: str = "claims") -> tuple[str, str, str]:
    """(before and the start marker, the block, the end marker and after) of a README's `name` block."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start_marker) != 1 or text.count(end_marker) != 1:
        raise DataFileError(
            f"{path} needs exactly one '{start_marker}' line and one '{end_marker}' line around the {name} block "
            f"(found {text.count(start_marker)} and {text.count(end_marker)}); add them where it goes"
        )
    start = text.index(start_marker) + len(start_marker)
    end = text.index(end_marker)
    if end < start:
        raise DataFileError(f"{path} has '{end_marker}' before '{start_marker}'; put the start marker first")
    return text[:start], text[start:end], text[end:]


def check_block(path: Path, printed: str, name: str = "claims", script: str = "analyses/claims.py") -> int:
    """0 when the README's block is what is printed now, else 1 with a unified diff on stdout."""
    _, block, _ = split_block(read_text(path), path, name)
    if block.strip("\n") == printed.strip("\n"):
        print(f"{path}: the {name} block is up to date")
        return 0
    diff = difflib.unified_diff(
        block.strip("\n").splitlines(),
        printed.strip("\n").splitlines(),
        f"{path} ({name} block)",
        f"{script} (now)",
        lineterm="",
    )
    print("\n".join(diff))
    print(f"{path}: the {name} block differs from the results; run the same command with --write {path}")
    return 1


def write_block(path: Path, printed: str, name: str = "claims") -> None:
    before, _, after = split_block(read_text(path), path, name)
    path.write_text(before + "\n" + printed.strip("\n") + "\n" + after)


def read_text(path: Path) -> str:
    if not path.is_file():
        raise DataFileError(f"no file {path}; pass the README that holds the claims block, e.g. README.md")
    return path.read_text()
