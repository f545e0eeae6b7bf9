"""Developer and CI entry point for slabot (standard library only, Python 3.11+).

    python3 dev.py demo [ARGS]     run the embedded demo (`slabot demo ARGS`)
    python3 dev.py test [PYTEST]   ruff check, mypy, lint-imports, then pytest [PYTEST]
    python3 dev.py serve [ARGS]    `slabot serve ARGS`
    python3 dev.py slabot ARGS     `slabot ARGS` (`dev.py slabot check agreement.yaml`)
    python3 dev.py bench [ARGS]    `python -m benchmarks ARGS`
    python3 dev.py lock [UV ARGS]  regenerate requirements.lock with uv

Every command first makes sure ./.venv exists and matches requirements.lock and
pyproject.toml (it installs only when either file changed since the last install).

`test` gives pytest a throwaway PostgreSQL server (tests/support/postgres.py) in
SLABOT_TEST_POSTGRES_URL, unless that is already set: always when CI=true (which also
sets SLABOT_REQUIRE_POSTGRES=1, so PostgreSQL tests fail instead of skipping), and
elsewhere whenever PostgreSQL binaries are installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = str(BIN / "python")
STAMP = VENV / ".slabot-lock-sha"
LOCK = ROOT / "requirements.lock"
PIP = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
UV_COMPILE = ["pip", "compile", "-q", "pyproject.toml", "--extra", "dev"]
UV_COMPILE += ["--python-version", "3.11", "-o", LOCK.name, "--generate-hashes"]


def say(message: str) -> None:
    print(f"dev.py: {message}", flush=True)


def run(argv: list[str], env: dict[str, str] | None = None) -> int:
    return subprocess.run(argv, cwd=ROOT, env=env, check=False).returncode


def check(argv: list[str]) -> None:
    """Run a setup command; stop dev.py if it fails."""
    code = run(argv)
    if code != 0:
        sys.exit(f"dev.py: failed (exit {code}): {' '.join(argv)}")


def venv_works() -> bool:
    probe = [PYTHON, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
    try:
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def ensure_venv() -> None:
    if venv_works():
        return
    if VENV.exists():
        say(f"{VENV} is broken; recreating it")
        shutil.rmtree(VENV)
    say(f"creating virtualenv {VENV} with {sys.executable} ...")
    if run([sys.executable, "-m", "venv", str(VENV)]) != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        sys.exit("dev.py: cannot create .venv (Debian: apt-get install python3-venv)")


def ensure_deps() -> None:
    ensure_venv()
    inputs = LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    digest = hashlib.sha256(inputs).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    probe = [PYTHON, "-c", "import pip"]
    if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        say("adding pip to the virtualenv ...")  # e.g. a venv made by `uv venv`
        check([PYTHON, "-m", "ensurepip"])
    say("installing dependencies from requirements.lock ...")
    check([*PIP, "--require-hashes", "-r", str(LOCK)])
    say("installing slabot (editable) ...")
    check([*PIP, "--no-deps", "-e", str(ROOT)])
    STAMP.write_text(digest + "\n")


def exec_venv(program: str, *args: str) -> None:
    ensure_deps()
    path = str(BIN / program)  # also as argv[0]: python finds its venv from it
    sys.stdout.flush()
    try:
        os.execv(path, [path, *args])
    except OSError as error:
        sys.exit(f"dev.py: cannot run {path}: {error}")


def pytest_step(args: list[str], env: dict[str, str]) -> int:
    # One pytest-xdist worker per core unless told otherwise (`-n 0` runs in one process); the
    # fault-injection suite stays on one worker (its tests start processes and time their recovery).
    parallel = [] if any(a.startswith(("-n", "--numprocesses")) for a in args) else ["-n", "auto"]
    argv = [PYTHON, "-m", "pytest", *parallel, "--dist", "loadgroup", *args]
    in_ci = os.environ.get("CI") == "true"
    if in_ci:
        env.setdefault("SLABOT_REQUIRE_POSTGRES", "1")
    if env.get("SLABOT_TEST_POSTGRES_URL"):
        say("using the PostgreSQL server in SLABOT_TEST_POSTGRES_URL")
        return run(argv, env)
    # Load tests/support/postgres.py by path: it is stdlib-only, like this file.
    path = ROOT / "tests" / "support" / "postgres.py"
    spec = importlib.util.spec_from_file_location("slabot_dev_postgres", path)
    assert spec is not None and spec.loader is not None
    postgres = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(postgres)
    server: Callable[[], AbstractContextManager[str]] = postgres.throwaway_postgres
    if not in_ci and postgres.find_pg_bin() is None:
        say("PostgreSQL binaries not found: PostgreSQL tests will be skipped")
        return run(argv, env)
    say("starting a throwaway PostgreSQL ...")
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(server())
        except postgres.PostgresError as error:
            say(f"could not start PostgreSQL: {error}")
            if in_ci:
                return 1
            say("running pytest without PostgreSQL: its tests will be skipped")
            return run(argv, env)
        say(f"SLABOT_TEST_POSTGRES_URL={url}")
        return run(argv, {**env, "SLABOT_TEST_POSTGRES_URL": url})


def test(args: list[str]) -> int:
    ensure_deps()
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "VIRTUAL_ENV": str(VENV), "PATH": path}
    steps: list[tuple[str, Callable[[], int]]] = [
        ("ruff", lambda: run([str(BIN / "ruff"), "check", "."], env)),
        ("mypy", lambda: run([str(BIN / "mypy")], env)),
        ("lint-imports", lambda: run([str(BIN / "lint-imports")], env)),
        ("pytest", lambda: pytest_step(args, env)),  # exit 5 (no tests) fails too
    ]
    for name, step in steps:
        print(f"\n===== {name} =====", flush=True)
        code = step()
        if code != 0:
            hint = " (no tests collected)" if name == "pytest" and code == 5 else ""
            say(f"FAILED at step '{name}' (exit {code}){hint}")
            return code
    say("all steps passed: " + ", ".join(name for name, _ in steps))
    return 0


def lock(args: list[str]) -> int:
    ensure_venv()  # not ensure_deps: the current lock may be what is broken
    if not (BIN / "uv").exists():
        say("installing uv into the virtualenv ...")
        check([*PIP, "uv"])
    code = run([str(BIN / "uv"), *UV_COMPILE, *args])
    say("wrote requirements.lock" if code == 0 else f"uv failed (exit {code})")
    return code


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so a throwaway PostgreSQL is stopped


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by any python3
        sys.exit(f"dev.py needs Python 3.11 or newer, not {sys.version.split()[0]}")
    signal.signal(signal.SIGTERM, _terminate)
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "demo":
        exec_venv("slabot", "demo", *args)
    elif command == "serve":
        exec_venv("slabot", "serve", *args)
    elif command == "slabot":
        exec_venv("slabot", *args)
    elif command == "bench":
        exec_venv("python", "-m", "benchmarks", *args)
    elif command == "test":
        return test(args)
    elif command == "lock":
        return lock(args)
    elif command in ("help", "-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    print(f"dev.py: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C: cleanup has run, skip the traceback
        sys.exit(130)
