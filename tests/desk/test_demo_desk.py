"""`slabot demo` serves the desk on 127.0.0.1 without sign-in and prints its URL first; the
simulated reps keep acting while someone uses it."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.demo.run import run_demo

START = datetime(2026, 12, 2, 13, 25, tzinfo=UTC)   # 08:25 in New York, a Wednesday


class Watching(io.StringIO):
    """The demo's screen: once a few cards are out, it visits the desk as a newcomer would (from the
    demo's own thread, so the simulation is mid-run: an explicit point, not a timed wait)."""

    def __init__(self) -> None:
        super().__init__()
        self.url: str | None = None
        self.seen: dict[str, Any] = {}

    def write(self, text: str) -> int:
        written = super().write(text)
        if self.url is None and (found := re.search(r"The desk: (http://127\.0\.0\.1:\d+/desk)", self.getvalue())):
            self.url = found.group(1)
        if self.url and not self.seen and self.getvalue().count("card") >= 3:
            self.visit(self.url)
        return written

    def visit(self, url: str) -> None:
        with httpx.Client() as client:
            overview = client.get(url)
            self.seen["overview"] = (overview.status_code, overview.text)
            csrf = re.search(r'name="csrf" value="([^"]+)"', overview.text)
            assert csrf is not None
            switched = client.post(url + "/as", data={"csrf": csrf.group(1), "as": "rep:eve", "next": "/desk/leads"},
                                   headers={"Origin": url.removesuffix("/desk")})
            self.seen["switched"] = switched.status_code
            self.seen["leads"] = client.get(url + "/leads").text
            self.seen["cross_site"] = client.post(url + "/as", data={"csrf": csrf.group(1), "as": "sales_vp"},
                                                  headers={"Origin": "http://evil.example"}).status_code


def test_the_demo_serves_the_desk_and_prints_its_url_first() -> None:
    out = Watching()
    summary = run_demo(speed=6000, seed=7, out=out, start=START, simulated_hours=6, replay=False, realtime=False,
                       desk_port=0)
    first_line = out.getvalue().splitlines()[0]
    assert first_line.startswith("The desk: http://127.0.0.1:")
    status, overview = out.seen["overview"]
    assert status == 200 and "Act as" in overview and "Maya Lin" in overview   # no sign-in: the switcher
    assert out.seen["switched"] == 303
    assert "Eve Adams · sees Mid-Market" in out.seen["leads"]
    assert out.seen["cross_site"] == 403
    assert summary.leads >= 3 and summary.rep_clicks >= 1   # the simulated reps kept acting
