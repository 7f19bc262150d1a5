"""The documentation: every public module has a reference page, and the README stays a short entry point whose
links and commands work (the site's strict build is .ci/run's docs step; its content checks are in
tests/integration/test_docs.py)."""

from __future__ import annotations

import importlib.util
import pkgutil
import re
from pathlib import Path

import anchorlens

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REFERENCE = ROOT / "docs" / "reference"
README_LIMIT = 12_000
#: Modules without a reference page, and why.
UNDOCUMENTED_MODULES = {
    "anchorlens.cli": "the command line: its options are on the pages of each command and in `anchorlens --help`",
    "anchorlens.version": "holds only __version__",
}
#: Markdown links and images, [text](target) and ![alt](target); the target ends at a space or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _without_code(markdown: str) -> str:
    """Markdown with fenced code blocks and inline code removed: a `[x](y)` inside code is not a link."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


def relative_links(markdown: str) -> list[str]:
    """Targets of the relative links of a markdown text, without their #fragment (web and mail links skipped)."""
    targets = []
    for target in LINK.findall(_without_code(markdown)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_relative_links_finds_links_and_skips_code_and_web_links():
    text = (
        "See [models](docs/models.md#other-models) and ![fig](docs/a.svg).\n"
        "[web](https://example.org/x.md) [mail](mailto:a@b.c) [here](#results) `[not](a link.md)`\n"
        "```python\nx = [1](2)\n```\n"
    )
    assert relative_links(text) == ["docs/models.md", "docs/a.svg"]


def test_readme_is_an_entry_point_under_the_limit():
    text = README.read_text(encoding="utf-8")
    assert len(text) < README_LIMIT, (
        f"README.md has {len(text)} characters; move detail into docs/ (limit {README_LIMIT})"
    )


def test_every_relative_link_in_the_readme_resolves():
    links = relative_links(README.read_text(encoding="utf-8"))
    assert links, "the README links into the documentation"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_keeps_the_two_commands_and_the_ci_test_command():
    text = README.read_text(encoding="utf-8")
    assert "bash scripts/setup.sh && .venv/bin/python -m pytest -q" in text
    assert "bash scripts/setup.sh && .venv/bin/anchorlens reproduce --out results/reproduce" in text
    # CI runs the README's command on the default line, then the same command over the rest of the suite: the
    # complement of its marker expression, so that every test runs once.
    ci_tests = [
        line[line.index(".venv/bin/python -m pytest") :].strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if ".venv/bin/python -m pytest" in line
    ]
    assert len(ci_tests) == 2, f"CI's default-line test steps are {ci_tests}"
    readme, rest = ci_tests
    assert f"bash scripts/setup.sh && {readme}" in text, f"README lacks CI's test command {readme}"
    assert readme.endswith(' -m "not integration or smoke"'), readme
    assert rest == readme.replace('-m "not integration or smoke"', '-m "integration and not smoke"'), rest


def public_modules() -> list[str]:
    names = ["anchorlens"]
    for info in pkgutil.walk_packages(anchorlens.__path__, prefix="anchorlens."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(name for name in names if name not in UNDOCUMENTED_MODULES)


def test_every_public_module_has_a_reference_page():
    directives = set()
    for page in REFERENCE.rglob("*.md"):
        directives.update(re.findall(r"^::: *(\S+)", page.read_text(encoding="utf-8"), flags=re.M))
    missing = [name for name in public_modules() if name not in directives]
    assert not missing, (
        f"modules without a page in docs/reference/: {missing}; add one with a `::: <module>` line and list it "
        "in mkdocs.yml's nav (or name the module in UNDOCUMENTED_MODULES with the reason)"
    )


def test_every_page_is_in_the_nav():
    """A page left out of the nav builds without a warning but cannot be reached from the menu."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    listed = set(re.findall(r"(\S+\.md)\s*$", nav, flags=re.M))
    pages = {
        page.relative_to(ROOT / "docs").as_posix()
        for page in (ROOT / "docs").rglob("*.md")
        if not page.relative_to(ROOT / "docs").as_posix().startswith("results/")
    }
    assert not pages - listed, f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def _test_names(path: Path) -> set[str]:
    return set(re.findall(r"^def (test_\w+)\(", path.read_text(encoding="utf-8"), flags=re.M))


def test_every_test_the_docs_name_is_where_they_say():
    """`tests/...py::test_x` (and a following `::test_y`, in the same file) in README.md, docs/ and the package's
    messages name a test that exists in that file: a test moved to another tier moves its references too."""
    sources = [README, *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "anchorlens").rglob("*.py"))]
    wrong = []
    for source in sources:
        if "results" in source.relative_to(ROOT).parts:
            continue
        for line in source.read_text(encoding="utf-8").splitlines():
            path = None
            for named, name in re.findall(r"(tests/[\w/]+\.py)?::(test_\w+)", line):
                path = named or path
                if path is None:
                    continue
                file = ROOT / path
                if not file.is_file() or name not in _test_names(file):
                    wrong.append(f"{source.relative_to(ROOT)}: {path}::{name}")
    assert not wrong, "these test references name no test there:\n" + "\n".join(wrong)
