"""A throwaway PostgreSQL server for tests, benchmarks and manual use.

    with throwaway_postgres() as url:
        ...  # url == "postgresql+psycopg://slabot@127.0.0.1:PORT/slabot_test"

The server lives in a fresh temporary directory (data, Unix socket, log), listens on
127.0.0.1 on a free port, runs with durability switched off (fsync, synchronous_commit,
full_page_writes) so it starts in a couple of seconds, and is stopped and deleted when
the ``with`` block exits. As root, initdb/pg_ctl run as the ``postgres`` system user,
because PostgreSQL refuses to run as root.

As a script, ``python -m tests.support.postgres`` starts a server, prints its URL on
stdout and keeps it running until Ctrl-C or SIGTERM.

Standard library only: dev.py imports this module from outside the virtualenv.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

USER = "slabot"
DATABASE = "slabot_test"
HOST = "127.0.0.1"
SYSTEM_USER = "postgres"  # who runs the server when we are root
START_TIMEOUT_SECONDS = 30
_START_ATTEMPTS = 3  # a free port can be taken between finding and binding it


class PostgresError(RuntimeError):
    """The throwaway server could not be set up."""


def find_pg_bin() -> Path | None:
    """Return a directory holding ``initdb`` and ``pg_ctl``, or None.

    Looks in /usr/lib/postgresql/*/bin (Debian/Ubuntu layout, newest version first),
    then on PATH.
    """

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path:
        candidates.append(Path(initdb_on_path).resolve().parent)
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return directory
    return None


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def url_for(port: int) -> str:
    """The SQLAlchemy URL of the throwaway database on ``port``."""
    return f"postgresql+psycopg://{USER}@{HOST}:{port}/{DATABASE}"


def _as_server_user(argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` so it runs as the postgres system user when we are root."""
    if os.geteuid() != 0:
        return list(argv)
    if shutil.which("runuser"):
        return ["runuser", "-u", SYSTEM_USER, "--", *argv]
    return ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]


def _run(argv: Sequence[str], what: str, log: Path | None = None) -> None:
    # cwd="/": the postgres user may not be allowed into our working directory.
    result = subprocess.run(
        argv,
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise PostgresError(
            f"{what} failed (exit {result.returncode}): {shlex.join(argv)}\n{output}" + _log_tail(log)
        )


def _log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(tail)


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a private PostgreSQL server, yield its SQLAlchemy URL, then delete it."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise PostgresError(
            "PostgreSQL binaries (initdb, pg_ctl) not found in "
            "/usr/lib/postgresql/*/bin or on PATH; try `apt-get install postgresql`"
        )
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresError(
                f"running as root, but there is no '{SYSTEM_USER}' system user to run "
                "PostgreSQL as (PostgreSQL refuses to run as root); install the "
                "postgresql package or run as an ordinary user"
            ) from None

    workdir = Path(tempfile.mkdtemp(prefix="slabot-pg-"))
    data = workdir / "data"
    log = workdir / "postgres.log"
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        if owner is not None:
            shutil.chown(workdir, user=owner.pw_uid, group=owner.pw_gid)
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust"]
        _run(_as_server_user([*initdb, "-E", "UTF8", "--locale=C", "--no-sync"]), "initdb")
        for attempt in range(1, _START_ATTEMPTS + 1):
            port = free_port()
            options = (
                f"-p {port} -k {shlex.quote(str(workdir))} -c listen_addresses={HOST}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            timeout = str(START_TIMEOUT_SECONDS)
            start = [pg_ctl, "-w", "-t", timeout, "-D", str(data), "-l", str(log), "-o", options]
            try:
                _run(_as_server_user([*start, "start"]), "pg_ctl start", log)
                break
            except PostgresError:
                port_taken = "could not bind" in _log_tail(log)
                if not port_taken or attempt == _START_ATTEMPTS:
                    raise
        started = True
        createdb = [str(bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", USER, DATABASE]
        _run(createdb, "createdb", log)
        yield url_for(port)
    finally:
        try:
            if started:
                stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
                _run(_as_server_user(stop), "pg_ctl stop", log)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with throwaway_postgres() as url:
            print(url, flush=True)
            print("PostgreSQL is running; Ctrl-C or SIGTERM stops it.", file=sys.stderr)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        return 0
    except PostgresError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
