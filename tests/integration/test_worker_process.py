"""`slabot worker` builds its transports without a web app, and `slabot serve --no-scheduler` picks a
factory that runs no worker instead of passing a flag through the environment."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bot.http.app import app_from_environment, web_app_from_environment
from tests.conftest import EXAMPLE_AGREEMENT, INTAKE_TOKEN

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_builds_every_transport_without_the_web_app(tmp_path: Path) -> None:
    # A fresh interpreter, so what the worker's path imports is all that is loaded.
    code = textwrap.dedent(f"""
        import sys
        from bot.services import build_services
        from bot.settings import Settings
        from bot.worker.transports import build_transports

        settings = Settings(_env_file=None, database_url="sqlite:///{tmp_path / 'w.db'}",
                            slabot_agreement={str(EXAMPLE_AGREEMENT)!r}, slack_bot_token="xoxb-test",
                            slack_signing_secret="s3cret", teams_app_id="00000000-0000-0000-0000-000000000001",
                            teams_app_password="pw", console="1")
        services = build_services(settings)
        build_transports(services)
        print(sorted(f"{{k}}={{type(v).__name__}}" for k, v in services.transports.items()))
        print([m for m in ("bot.http.app", "bot.desk") if m in sys.modules])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    transports, web_modules = result.stdout.strip().splitlines()
    assert transports == "['console=ConsoleTransport', 'slack=SlackTransport', 'teams=TeamsTransport']"
    assert web_modules == "[]"


@pytest.mark.parametrize(("factory", "runs_worker"), [(app_from_environment, True),
                                                      (web_app_from_environment, False)])
async def test_serve_factories_run_the_worker_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     factory: object, runs_worker: bool) -> None:
    monkeypatch.chdir(tmp_path)   # no .env from wherever the tests run
    for name, value in {"DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
                        "SLABOT_AGREEMENT": str(EXAMPLE_AGREEMENT), "SLABOT_INTAKE_TOKEN": INTAKE_TOKEN}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLABOT_RUN_SCHEDULER", raising=False)
    assert callable(factory)
    app = factory()
    services = app.state.services
    services.ctx.db.upgrade()
    async with app.router.lifespan_context(app):
        assert (services.worker is not None) is runs_worker
