"""The one get-or-raise (core.store.lookup.get_or_raise): the row, or "no <model> with id <key>" in the
caller's exception type."""

from __future__ import annotations

import pytest

from core.app import App
from core.batches.lifecycle import BatchError, get_batch
from core.replies.routing import apply_routing
from core.store.db import session_scope
from core.store.lookup import get_or_raise
from core.store.models import PriceOverride, Prospect


def test_the_row_when_it_exists(demo_app: App) -> None:
    with session_scope(demo_app.engine) as s:
        first = s.get(Prospect, 1)
        assert first is not None
        assert get_or_raise(s, Prospect, 1) is first


def test_a_missing_row_raises_the_callers_error_with_one_wording(app: App) -> None:
    with session_scope(app.engine) as s:
        with pytest.raises(LookupError, match=r"^no prospect with id 404$"):
            get_or_raise(s, Prospect, 404)
        with pytest.raises(BatchError, match=r"^no price override with id 9$"):
            get_or_raise(s, PriceOverride, 9, BatchError)
    with pytest.raises(BatchError, match=r"^no batch with id 404$"):
        get_batch(app, 404)
    with pytest.raises(LookupError, match=r"^no reply with id 404$"):
        apply_routing(app, 404)
