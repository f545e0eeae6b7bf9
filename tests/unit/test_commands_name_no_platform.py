"""commands/ is platform-neutral: no chat platform's name appears there as a string literal.

The adapters (bot/slack, bot/teams, the demo's console) pass what differs, such as how their users type
the command (`prefix`); commands know only "a chat platform of the agreement" (sla.agreement) or not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import commands

PLATFORM_NAMES = {"slack", "teams", "console"}
COMMANDS = Path(commands.__file__).parent


def platform_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) for each string constant naming a platform, docstrings aside."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and node.value.strip().strip("#:/").lower() in PLATFORM_NAMES]


def test_the_check_finds_a_platform_name() -> None:
    source = ('def f(platform: str) -> str:\n    """On Slack."""\n'
              '    return "/sla " if platform == "slack" else "sla "\n')
    assert platform_literals(source) == [(3, "slack")]
    assert platform_literals('X = "Teams"\nY = "console:"\n') == [(1, "Teams"), (2, "console:")]


def test_no_platform_names_in_commands() -> None:
    files = sorted(COMMANDS.rglob("*.py"))
    assert len(files) > 10
    found = {str(path.relative_to(COMMANDS.parent)): hits for path in files
             if (hits := platform_literals(path.read_text()))}
    assert found == {}
