"""`slabot import` reads its CSV as it goes: a file unreadable from some row on keeps the rows
before it (and says on which line it stopped); a row that is readable but not a valid lead is
rejected by line while every other row is kept."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlmodel import col

from storage.db import Database
from storage.tables import Lead
from tests.e2e.test_cli import slabot

HEADER = b"external_id,email,first_name,last_name,company,employees,source,stage,activities\n"


def row(n: int, *, email: bytes | None = None) -> bytes:
    address = email if email is not None else f"p{n}@c{n}.example".encode()
    return (f"s-{n},".encode() + address
            + f",Pat,Lee,Co {n},50,demo_request,solution_research,demo_requested\n".encode())


def stored(tmp_path: Path) -> set[str]:
    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    with db.read() as session:
        ids = {str(e) for e in session.execute(sa.select(col(Lead.external_id))).scalars()}
    db.dispose()
    return ids


def test_a_file_unreadable_from_row_900_keeps_the_899_rows_before_it(tmp_path: Path) -> None:
    rows = [row(n) for n in range(1, 1001)]
    rows[899] = rows[899].replace(b"Co 900", b"Caf\xe9 900")      # row 900 (line 901): Latin-1, not UTF-8
    path = tmp_path / "leads.csv"
    path.write_bytes(HEADER + b"".join(rows))
    result = slabot(tmp_path, "import", str(path))
    assert result.returncode == 2, result.stderr
    assert "accepted 899 (" in result.stdout and "duplicate 0, rejected 0" in result.stdout, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: ") and "line 901" in error and "not UTF-8" in error, error
    assert "Traceback" not in result.stderr
    assert stored(tmp_path) == {f"s-{n}" for n in range(1, 900)}


def test_a_bad_lead_in_row_900_is_rejected_by_line_and_the_rest_are_kept(tmp_path: Path) -> None:
    rows = [row(n) for n in range(1, 1001)]
    rows[899] = row(900, email=b"not-an-email")
    path = tmp_path / "leads.csv"
    path.write_bytes(HEADER + b"".join(rows))
    result = slabot(tmp_path, "import", str(path))
    assert result.returncode == 1, result.stderr
    assert "accepted 999 (" in result.stdout and "duplicate 0, rejected 1" in result.stdout, result.stderr
    assert "rejected line 901: email: not an e-mail address" in result.stdout
    assert stored(tmp_path) == {f"s-{n}" for n in range(1, 1001)} - {"s-900"}


def test_rows_are_named_by_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"external_id,email,company\n"
                     b'q-1,ann@a.example,"Acme\nEurope"\n'       # one row over lines 2 and 3
                     b"\n"                                        # line 4: blank, skipped
                     b"q-2,not-an-email,Big\n"                    # line 5
                     b"q-3,cy@c.example,Co\n")
    result = slabot(tmp_path, "import", str(path))
    # A company name with a line break in it is refused like any control character.
    assert "rejected line 2: company: must not contain control" in result.stdout, result.stdout + result.stderr
    assert "rejected line 5: email: not an e-mail address" in result.stdout
    assert stored(tmp_path) == {"q-3"}
