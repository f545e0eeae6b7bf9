"""The Microsoft Teams app package: manifest (schema v1.17) and icons, filled in for one deployment.

`manifests/teams/manifest.json` is the template; `{{APP_ID}}`, `{{URL}}` and `{{HOST}}` are replaced
and the bot's command lists are generated from commands.registry, so the compose-box suggestions
are always the commands the bot really has. Upload the zip from `build_package` in Teams
(Apps > Manage your apps > Upload an app) or the Teams admin center.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from commands.registry import COMMANDS

TEMPLATE_DIR = Path(__file__).resolve().parent / "teams"
ICONS = ("color.png", "outline.png")
#: Teams manifest limits (schema v1.17): 10 commands per list, 32/128 characters per command.
MAX_COMMANDS = 10
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
#: Commands that only make sense in a channel (they act on the channel they are sent in).
_CHANNEL_ONLY = frozenset({"link"})


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        for key, value in values.items():
            node = node.replace("{{" + key + "}}", value)
        return node
    if isinstance(node, list):
        return [_fill(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    return node


def command_lists() -> list[dict[str, Any]]:
    """One command list per scope, from commands.registry.COMMANDS (at most 10 each)."""

    def entries(scope_channel: bool) -> list[dict[str, str]]:
        chosen = [c for c in COMMANDS if scope_channel or c.name not in _CHANNEL_ONLY][:MAX_COMMANDS]
        return [{"title": f"sla {c.name}"[:32], "description": (c.help or c.usage)[:128]} for c in chosen]

    return [{"scopes": ["team"], "commands": entries(True)},
            {"scopes": ["groupChat"], "commands": entries(False)},
            {"scopes": ["personal"], "commands": entries(False)}]


def teams_manifest(app_id: str, url: str) -> dict[str, Any]:
    """The manifest for the bot registered as `app_id` (a GUID), served at `url` (https://host)."""
    if not _GUID.match(app_id):
        raise ValueError(f"the Teams app id must be the bot's Microsoft App ID (a GUID), not {app_id!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute URL: {url!r}")
    base = url.rstrip("/")
    template = json.loads((TEMPLATE_DIR / "manifest.json").read_text(encoding="utf-8"))
    manifest: dict[str, Any] = _fill(template, {"APP_ID": app_id, "URL": base, "HOST": parts.hostname})
    for bot in manifest.get("bots", []):
        bot["commandLists"] = command_lists()
    return manifest


def build_package(app_id: str, url: str, zip_path: Path) -> Path:
    """Write the app package (manifest.json, color.png, outline.png at the zip's root)."""
    manifest = teams_manifest(app_id, url)
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as package:
        package.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for icon in ICONS:
            package.write(TEMPLATE_DIR / icon, arcname=icon)
    return zip_path
