"""Shared benchmark helpers: percentiles, a server subprocess, result rows."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_AGREEMENT = ROOT / "examples" / "agreement.yaml"
EXAMPLE_LEAD = ROOT / "examples" / "lead.json"


@dataclass
class Row:
    name: str
    result: str
    target: str
    ok: bool | None

    def cells(self) -> list[str]:
        verdict = {True: "met", False: "MISSED", None: ""}[self.ok]
        return [self.name, self.result, self.target, verdict]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = (len(ordered) - 1) * q
    low = int(index)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (index - low)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log_path: str, *, within: float) -> None:
    """Wait until the server process accepts connections on `port`; kill it and raise with its log's tail
    if it exits or does not listen within `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                err = Path(log_path).read_text(errors="replace")
                raise RuntimeError(f"server did not start: {err[-2000:]}") from None
            time.sleep(0.05)


@contextmanager
def serve(env: dict[str, str], *args: str) -> Iterator[str]:
    """`slabot serve` in its own process (so the load generator does not share its GIL)."""
    port = free_port()
    environment = {**os.environ, **env}
    log = tempfile.NamedTemporaryFile(prefix="slabot-bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port), *args],
                               env=environment, cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_until_listening(process, port, log.name, within=30)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        Path(log.name).unlink(missing_ok=True)


def table(rows: list[Row]) -> str:
    header = ["benchmark", "result", "target", ""]
    cells = [header] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in cells]
    lines.insert(1, "-|-".join("-" * w for w in widths))
    return "\n".join(lines)
