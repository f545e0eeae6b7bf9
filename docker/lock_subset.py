"""Print the part of requirements.lock that some roots need, hashes and all (standard library only).

    python docker/lock_subset.py requirements.lock pyproject.toml   # what slabot needs at run time
    python docker/lock_subset.py requirements.lock hatchling        # what building the wheel needs

requirements.lock (from `python3 dev.py lock`) also pins the dev tools. The container installs
only what the roots reach, following the lock's own `# via` notes, so it keeps the same versions
and hashes without shipping pytest, mypy or hadolint. A root named `pyproject.toml` stands for
the project's run-time dependencies. If a package the roots need were missing from the output,
`pip install --require-hashes` would refuse to install, so a mistake here cannot go unnoticed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (the lines that pin it, the names of the packages it is there for)."""
    lines: dict[str, list[str]] = {}
    parents: dict[str, set[str]] = {}
    name = None
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            match = _NAME.match(line)
            if match is None:
                raise ValueError(f"cannot read this line of the lock: {line!r}")
            name = normalize(match.group(1))
            lines[name], parents[name] = [line], set()
        elif name is None or not stripped:
            continue
        elif stripped.startswith("--hash"):
            lines[name].append(line)
        elif stripped.startswith("#"):
            note = stripped.lstrip("#").strip()
            note = "" if note == "via" else note.removeprefix("via ").strip()
            if note and " (" not in note:   # "slabot (pyproject.toml)" is the project itself
                parents[name].add(normalize(note))
    return {key: ("\n".join(lines[key]), parents[key]) for key in lines}


def project_dependencies(pyproject: Path) -> set[str]:
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    names = set()
    for requirement in data["project"]["dependencies"]:
        match = _NAME.match(requirement)
        assert match is not None, requirement
        names.add(normalize(match.group(1)))
    return names


def subset(blocks: dict[str, tuple[str, set[str]]], roots: set[str]) -> list[str]:
    missing = roots - blocks.keys()
    if missing:
        raise SystemExit(f"not in the lock: {', '.join(sorted(missing))} (run `python3 dev.py lock`)")
    needed = set(roots)
    grew = True
    while grew:
        grew = False
        for name, (_, parents) in blocks.items():
            if name not in needed and parents & needed:
                needed.add(name)
                grew = True
    return [blocks[name][0] for name in sorted(needed)]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    lock, *wanted = argv
    roots: set[str] = set()
    for root in wanted:
        roots |= project_dependencies(Path(root)) if root.endswith(".toml") else {normalize(root)}
    blocks = parse_lock(Path(lock).read_text(encoding="utf-8"))
    print("\n".join(subset(blocks, roots)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
