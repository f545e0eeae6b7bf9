"""The docs in docs/ describe the code as it is: every command and option of the CLI, every setting,
every field an agreement may have and every key of the status JSON is documented. A new option,
setting, field or key without its line in the docs fails here, with what to add."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args, get_origin

import click
from pydantic import BaseModel

from bot.cli import main as slabot
from bot.http.app import create_app
from bot.services import Services
from bot.settings import Settings
from commands.intake import handoff
from sla.agreement import Agreement
from sla.lead import LeadIn
from tests.conftest import EXAMPLE_LEAD, ROOT, T0

DOCS = ROOT / "docs"


def sections(markdown: Path, level: str = "## ") -> dict[str, str]:
    """Heading text -> the section's text (up to the next heading of the same or a higher level)."""
    text = markdown.read_text(encoding="utf-8")
    parts = re.split(rf"^{re.escape(level)}(.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


def test_every_cli_command_and_option_is_documented() -> None:
    doc = sections(DOCS / "cli.md")
    missing = []
    for path, command in commands(slabot):
        title = f"`slabot {' '.join(path)}`"
        if title not in doc:
            missing.append(f"a section '## {title}'")
            continue
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                flag = max(param.opts, key=len)
                if flag != "--help" and f"`{flag}" not in doc[title]:
                    missing.append(f"{flag} in '## {title}'")
    for param in slabot.params:
        if isinstance(param, click.Option) and f"`{max(param.opts, key=len)}`" not in doc["Global options"]:
            missing.append(f"{max(param.opts, key=len)} in '## Global options'")
    assert len(commands(slabot)) >= 10
    assert missing == [], "docs/cli.md lacks: " + "; ".join(missing)


def test_every_setting_is_documented() -> None:
    text = (DOCS / "environment.md").read_text()
    names = [name.upper() for name in Settings.model_fields]
    assert "DATABASE_URL" in names and "TEAMS_ALLOW_UNAUTHENTICATED" in names
    missing = [name for name in names if f"`{name}`" not in text]
    assert missing == [], f"docs/environment.md lacks a row for: {', '.join(missing)}"


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        stack: list[Any] = [field.annotation]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                _models(annotation, seen)
            elif get_origin(annotation) is not None or get_args(annotation):
                stack.extend(get_args(annotation))


def test_every_agreement_field_is_documented() -> None:
    models: set[type[BaseModel]] = set()
    _models(Agreement, models)
    assert len(models) >= 15, "the walk over the agreement model found too few models"
    text = (DOCS / "agreement.md").read_text()
    missing = sorted({f"{model.__name__}.{name}" for model in models for name in model.model_fields
                      if not re.search(rf"`(?:[\w\[\]]+\.)*{re.escape(name)}`", text)})
    assert missing == [], f"docs/agreement.md does not mention: {', '.join(missing)}"


def test_every_status_key_is_documented(services: Services) -> None:
    handoff(services.ctx, LeadIn.model_validate_json(EXAMPLE_LEAD.read_text()))
    status = services.status(as_of=T0.replace(hour=17)).model_dump(mode="json")
    doc = sections(DOCS / "status.md")
    assert status["breaches"] and status["closed_loop"]["segments"], "the example lead should show in both"

    def keys(part: dict[str, Any]) -> set[str]:
        return set(part)

    # Every part of the status has its section: a mapping's keys, or the keys of a list's entries.
    expected: dict[str, set[str]] = {"Top level": keys(status)}
    for name, part in status.items():
        if isinstance(part, dict):
            expected[name] = keys(part)
        elif isinstance(part, list):
            expected[name] = keys(part[0]) if part else set()
    rep = next(iter(status["sales"]["per_rep"]))
    expected["sales"] |= keys(status["sales"]["per_rep"][rep])
    expected["closed_loop"] |= keys(status["closed_loop"]["segments"][0])
    expected["capacity"] |= keys(status["capacity"]["per_rep"][rep])
    assert {"period", "marketing", "sales", "breaches", "closed_loop"} <= set(expected)
    missing_sections = [name for name in expected if name not in doc]
    assert missing_sections == [], f"docs/status.md has no section for: {', '.join(missing_sections)}"
    missing = [f"{section}.{key}" for section, names in expected.items() for key in sorted(names)
               if f"`{key}`" not in doc.get(section, "")]
    assert missing == [], f"docs/status.md does not describe: {', '.join(missing)}"


def test_the_status_example_is_the_real_answer(services: Services) -> None:
    """docs/status.md's example and the one /docs shows are what slabot answers for the example lead
    handed off at 10:00 New York time and untouched an hour later, to the last key."""
    handoff(services.ctx, LeadIn.model_validate_json(EXAMPLE_LEAD.read_text()))
    real = services.status(as_of=T0.replace(hour=16)).model_dump(mode="json")
    block = re.search(r"```json\n(.*?)```", sections(DOCS / "status.md")["Example"], flags=re.S)
    assert block is not None, "docs/status.md's Example section has no JSON block"
    assert json.loads(block.group(1)) == real
    schema = create_app(services).openapi()
    shown = schema["paths"]["/api/v1/status"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert shown == real
