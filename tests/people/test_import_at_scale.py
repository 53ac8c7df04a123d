"""The prospect import streams: a 20,000-row file is stored in chunks, every row lands once, and matching,
do-not-contact and in-file duplicates work across chunk boundaries (not timed: `bench/import_csv.py` is)."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import select

from core.app import App
from core.people.prospects import import_prospects, suppress
from core.people.reading import RowError
from core.store.db import session_scope
from core.store.models import Prospect

N = 20_000


def _file(n: int) -> bytes:
    lines = ["first_name,company_name,linkedin_url,email,notes"]
    for i in range(n):
        url = f"https://fr.linkedin.com/in/pérson-{i}/?trk=x" if i % 2 else ""
        lines.append(f"P{i},Co {i % 97},{url},p{i}@example.com,row {i}")
    lines.append("P5,Co 5,,P5@EXAMPLE.COM,repeat of an early row at the very end")  # duplicate across chunks
    return ("\n".join(lines) + "\n").encode()


def test_a_20k_row_import_is_chunked_and_every_row_lands(app: App) -> None:
    suppress(app, "email:P19999@Example.com", "opted out")  # the last row of the last chunk
    suppress(app, "li:https://www.linkedin.com/in/pérson-7", "opted out")  # an early one, by profile
    report = import_prospects(app, _file(N), chunk_rows=3_000)
    assert report.chunks == 7  # 20,000 rows less one duplicate, in chunks of 3,000
    assert (report.rows, report.accepted, report.suppressed, report.duplicates, len(report.rejected)) == (
        N + 1, N - 2, 2, 1, 0)
    assert report.duplicate_lines == [RowError(N + 2, "duplicate of line 7: the same email address")]
    with session_scope(app.engine) as s:
        assert s.exec(select(func.count()).select_from(Prospect)).one() == N - 2
        stored = s.exec(select(Prospect).where(Prospect.first_name == "P12345")).one()
    assert stored.linkedin_url == "https://fr.linkedin.com/in/pérson-12345/?trk=x"  # as the user gave it
    assert stored.identity == "li:https://www.linkedin.com/in/p%C3%A9rson-12345"
    assert len(set(report.prospect_ids)) == N - 2

    again = import_prospects(app, _file(N), chunk_rows=3_000)  # everyone is now stored (or suppressed)
    assert (again.accepted, again.duplicates, again.suppressed) == (0, N - 1, 2)
    assert sorted(again.existing_ids) == sorted(report.prospect_ids)
