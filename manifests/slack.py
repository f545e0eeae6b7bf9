"""The Slack app manifest: the template in manifests/slack/manifest.yaml filled with the public URL
and the `/sla` words of commands/registry.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from commands.registry import COMMANDS, usage_hint

TEMPLATE = Path(__file__).with_name("slack") / "manifest.yaml"


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, str):
        for name, value in values.items():
            node = node.replace("{" + name + "}", value)
        return node
    return node


def slack_manifest(url: str) -> dict[str, Any]:
    """The manifest for a service reachable at `url` (e.g. https://bot.example.com)."""
    base = url.strip().rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise ValueError(f"the public URL must start with https:// (got {url!r})")
    template = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    words = ", ".join(spec.name for spec in COMMANDS if spec.name != "help")
    values = {"url": base, "usage": usage_hint(),
              "description": f"Your Sales & Marketing SLA: {words}"}
    return _fill(template, values)  # type: ignore[no-any-return]


def slack_manifest_yaml(url: str) -> str:
    return yaml.safe_dump(slack_manifest(url), sort_keys=False, allow_unicode=True, width=100)
