"""core.people.identity: one normal form for e-mails and LinkedIn URLs, every identity a prospect is known by, and
the migration that brings stored keys and suppressions to that form."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.app import App
from core.people import identity
from core.people.prospects import import_prospects, suppress
from core.store.db import session_scope
from core.store.models import Prospect, ProspectIdentity, Suppression

SAME_PROFILE = [
    "https://www.linkedin.com/in/josé",
    "https://www.linkedin.com/in/jos%C3%A9",
    "http://fr.linkedin.com/in/Jos%C3%A9/",
    "linkedin.com/in/JOSÉ?trk=public_profile#about",
    "https://de.linkedin.com/in/jose\u0301/details/experience/",  # é written as e + combining accent
    "//www.linkedin.com/in/jos%c3%a9///",
]


@pytest.mark.parametrize("url", SAME_PROFILE)
def test_every_spelling_of_a_profile_is_one_key(url: str) -> None:
    assert identity.linkedin_key(url) == "li:https://www.linkedin.com/in/jos%C3%A9"


def test_emails_are_case_folded() -> None:
    assert identity.email_key("  Jane.Doe@ACME.Example ") == "email:jane.doe@acme.example"
    assert identity.email_key("STRASSE@x.example") == identity.email_key("straße@X.example".upper())


@pytest.mark.parametrize(("raw", "key"), [
    ("email:Jane@Acme.COM", "email:jane@acme.com"),
    ("Jane@Acme.COM", "email:jane@acme.com"),
    ("li:https://fr.linkedin.com/in/Jane-Doe/", "li:https://www.linkedin.com/in/jane-doe"),
    ("https://fr.linkedin.com/in/jane-doe?x=1", "li:https://www.linkedin.com/in/jane-doe"),
    ("name:Jane  DOE|Acme ", "name:jane doe|acme"),
    ("not an identity", None),
    ("email:nobody", None),
])
def test_canonical_reads_stored_and_typed_identities(raw: str, key: str | None) -> None:
    assert identity.canonical(raw) == key


def test_a_prospect_is_known_by_every_profile_and_address_it_was_imported_with(app: App) -> None:
    import_prospects(app, b"first_name,company_name,email\nJane,Acme,jane@acme.example\n")
    # Later the same person (same e-mail, another case) arrives with a LinkedIn profile: a duplicate, and
    # the profile is now one of her identities.
    again = import_prospects(app, b"first_name,company_name,email,linkedin_url\n"
                                  b"Jane,Acme,JANE@acme.example,https://uk.linkedin.com/in/jane-a/\n")
    assert (again.accepted, again.duplicates) == (0, 1)
    with session_scope(app.engine) as s:
        learned = set(s.exec(select(ProspectIdentity.key)).all())
        pid = int(s.exec(select(Prospect.id)).one() or 0)
        known = identity.known_keys(s, [pid])[pid]
    assert learned == {"li:https://www.linkedin.com/in/jane-a"}  # the e-mail is her stored primary identity
    assert known == {"email:jane@acme.example", "li:https://www.linkedin.com/in/jane-a", "name:jane|acme"}
    # an opt-out under the profile alone now reaches her
    suppress(app, "https://www.linkedin.com/in/jane-a", "manual list")
    with session_scope(app.engine) as s:
        assert identity.is_suppressed(s, pid)


def test_orm_created_prospects_are_known_by_their_fields_too(app: App) -> None:
    with session_scope(app.engine) as s:
        p = Prospect(identity="email:x@y.example", first_name="X", company_name="Y",
                     linkedin_url="https://linkedin.com/in/x-y")
        s.add(p)
        s.flush()
        pid = int(p.id or 0)
    with session_scope(app.engine) as s:
        assert identity.find_prospects(s, ["li:https://www.linkedin.com/in/x-y"]) == {
            "li:https://www.linkedin.com/in/x-y": pid}


def test_migration_brings_old_keys_to_the_normal_form(app: App) -> None:
    from core.store.migrations import _m005_people_identities

    with app.engine.begin() as conn:  # as an old version stored them
        conn.execute(text("DROP TABLE prospect_identities"))
        conn.execute(text("INSERT INTO suppressions (identity, reason, created_at) VALUES "
                          "('email:JANE@ACME.EXAMPLE', 'old', '2026-01-01 00:00:00'), "
                          "('li:https://fr.linkedin.com/in/Jos%C3%A9/', 'old', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO prospects (identity, first_name, last_name, company_name, job_title, industry, "
                          "linkedin_url, email, recent_news, notes, sender_account, custom, flags, source, "
                          "created_at) VALUES ('li:https://www.linkedin.com/in/jane', 'Jane', '', 'Acme', '', '', "
                          "'https://www.linkedin.com/in/jane', 'Jane@Acme.example', '', '', '', '{}', '[]', 'import', "
                          "'2026-01-01 00:00:00')"))
        _m005_people_identities(conn)
    with session_scope(app.engine) as s:
        stored = set(s.exec(select(Suppression.identity)).all())
        pid = int(s.exec(select(Prospect.id)).one() or 0)
        assert stored == {"email:jane@acme.example", "li:https://www.linkedin.com/in/jos%C3%A9"}
        assert identity.suppressed_prospects(s, [pid]) == {pid: "old"}


@pytest.mark.parametrize(("value", "ok"), [
    ("jane@acme.io", True), ("Jane.Doe+x@ACME.co.uk", True), ("jane@acme", False), ("jane acme.io", False),
    ("jane@@acme.io", False), ("<jane@acme.io>", False), ("jane@acme.io, bob@acme.io", False), ("", False),
])
def test_one_email_check_for_the_prospect_and_reply_imports(value: str, ok: bool) -> None:
    from core.people.identity import is_email_address
    from core.people.rows import ProspectParser
    from core.replies.importing import _identity_cell

    assert is_email_address(value) is ok
    kind, _ = ProspectParser(["first_name", "company_name", "email"]).parse(2, ["Jane", "Acme", value])
    assert (kind == "row") is (ok or value == "")
    if value:
        assert (_identity_cell(value) is not None) is ok
