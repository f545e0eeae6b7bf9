"""Serve an app's desk on 127.0.0.1 in a background thread (`slabot demo`): no sign-in, a switcher
to act as anyone in the agreement."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


@dataclass
class DeskServer:
    url: str
    server: uvicorn.Server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_demo_desk(app: FastAPI, *, port: int = 0) -> Iterator[DeskServer]:
    """The app on 127.0.0.1:`port` (0: a free one) with the desk in demo mode, until the block ends.
    The app's lifespan is not run: the demo drives delivery and the clock itself."""
    app.state.desk.demo = True
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="slabot-desk", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the desk could not listen on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield DeskServer(url=f"http://127.0.0.1:{port}/desk", server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
