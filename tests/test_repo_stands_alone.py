"""A fresh clone of the repository, with nothing beside it, has everything its tests, benchmarks and
docs refer to: no tracked file points at the project's shared folder or at a path of the machine it
was written on, and every relative link of the Markdown docs lands on a file (and heading) in the repo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What must stand alone: the test suite, the benchmarks, the docs and examples, and the scripts.
CHECKED = ["tests", "benchmarks", "docs", "examples", ".ci", "README.md", "dev.py"]
#: The Markdown files whose links a reader follows.
LINKED = ["README.md", "docs", "examples/README.md", "tests/fixtures/SOURCES.md"]

# Spelled in pieces, so this file does not match its own patterns.
_SHARED = "sha" + "red"
OUTSIDE = re.compile("|".join([
    r"\.\./+" + _SHARED + r"\b",                   # the shared folder beside the checkout
    r"/work/(?:main|" + _SHARED + r")\b",          # this machine's checkout and shared folder
    _SHARED + r"/(?:contract|reference|research|seeds|hooks)\b",
    _SHARED + r"/DESIGN\.md",
    r"parents\[[2-9]\]\s*/\s*[\"']" + _SHARED,     # a path built from the test file up to it
    r"\.parent\s*/\s*[\"']" + _SHARED + "[\"']",     # a path built from the repo root up to it
]))


def tracked(*paths: str) -> list[Path]:
    """The files git tracks under `paths` (the files a fresh clone has)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        if os.environ.get("CI") == "true":   # CI runs in a fresh clone: this check must run there
            pytest.fail("CI runs in a git clone, but no git checkout was found")
        pytest.skip("not a git checkout: the tracked files are unknown")
    listed = subprocess.run([git, "ls-files", "-z", "--", *paths], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def test_the_patterns_catch_what_they_are_for() -> None:
    """The check below is only as good as its patterns: they must match the ways the repo used to
    reach outside itself, and not ordinary text."""
    for text in [f'SHARED = ROOT.parent / "{_SHARED}"',
                 f"REFERENCE = ../{_SHARED}/reference",
                 f"[contract](../{_SHARED}/contract/README.md)",
                 f"/work/{_SHARED}/reference/SOURCES.md",
                 f"cp {_SHARED}/contract/agreement.example.yaml /work/" + "main/README.md",
                 f'Path(__file__).resolve().parents[2] / "{_SHARED}"']:
        assert OUTSIDE.search(text), text
    for text in ["tests/fixtures/SOURCES.md", "shared by the test suites", "../docs/cli.md",
                 "the machine is shared", "examples/agreement.yaml"]:
        assert not OUTSIDE.search(text), text


def test_no_tracked_file_reaches_outside_the_repo() -> None:
    files = tracked(*CHECKED)
    assert any(f.name == "conftest.py" for f in files) and any(f.suffix == ".md" for f in files)
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue   # binary files (icons) hold no paths
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == [], "files that read outside the repo (copy what they need into tests/fixtures/ " \
                        "or examples/):\n" + "\n".join(found)


# --- Markdown links ---------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    text = _FENCE.sub("", markdown.read_text(encoding="utf-8"))
    found: set[str] = set()
    for heading in _HEADING.findall(text):
        anchor = github_anchor(heading)
        n = 0
        while (candidate := anchor if n == 0 else f"{anchor}-{n}") in found:
            n += 1
        found.add(candidate)
    return found


def markdown_files() -> list[Path]:
    return [p for p in tracked(*LINKED) if p.suffix == ".md"]


def test_github_anchors_are_computed_as_github_does() -> None:
    assert github_anchor("`slabot serve`") == "slabot-serve"
    assert github_anchor("GET /api/v1/leads/{id}") == "get-apiv1leadsid"
    assert github_anchor("Conditions (`when`)") == "conditions-when"
    assert github_anchor("closed_loop") == "closed_loop"


def test_docs_exist_for_every_part_of_the_contract() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/cli.md", "docs/http.md", "docs/environment.md", "docs/agreement.md",
            "docs/status.md", "examples/README.md", "tests/fixtures/SOURCES.md"} <= names


def test_every_relative_link_in_the_docs_resolves_inside_the_repo() -> None:
    broken = []
    checked = 0
    for page in markdown_files():
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue   # https:, mailto: ...: not a file of the repo
            path_part, _, fragment = target.partition("#")
            where = f"{page.relative_to(ROOT)}: ({target})"
            resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
            checked += 1
            if not resolved.is_relative_to(ROOT):
                broken.append(f"{where} leaves the repository")
            elif not resolved.exists():
                broken.append(f"{where} does not exist")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                broken.append(f"{where}: no heading with anchor #{fragment} in {resolved.relative_to(ROOT)}")
    assert checked > 20, "the link check found almost no links: is the pattern still right?"
    assert broken == [], "\n".join(broken)


def test_the_link_check_notices_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) [bad](#nowhere)\n```\n[skip](in-code.md)\n```\n")
    text = _FENCE.sub("", page.read_text())
    assert _LINK.findall(text) == ["#title", "missing.md", "#nowhere"]
    assert anchors(page) == {"title"}


def test_every_fixture_says_where_it_came_from() -> None:
    """Each file copied into tests/fixtures/ is named in a SOURCES.md of its folder or a parent."""
    fixtures = ROOT / "tests" / "fixtures"
    files = [p for p in tracked("tests/fixtures") if p.name != "SOURCES.md"]
    assert len(files) >= 20
    unexplained = []
    for path in files:
        notes = [folder / "SOURCES.md" for folder in [path.parent, *path.parent.parents]
                 if folder.is_relative_to(fixtures) and (folder / "SOURCES.md").exists()]
        if not any(path.name in note.read_text(encoding="utf-8") for note in notes):
            unexplained.append(str(path.relative_to(ROOT)))
    assert unexplained == [], "name these in tests/fixtures/SOURCES.md (origin, commit, licence): " + \
        ", ".join(unexplained)
