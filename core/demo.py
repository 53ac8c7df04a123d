"""Demo data for the embedded default: synthetic prospects and starter templates from `data/`.

Loaded once, on first start, into an empty database; never touches a database that already has data.
"""

from __future__ import annotations

from core.app import App
from core.messages.library import seed_templates
from core.people.prospects import count_prospects, import_prospects


def load_demo_data(app: App) -> dict[str, int]:
    added = {"templates": seed_templates(app), "prospects": 0}
    if count_prospects(app) == 0:
        data = (app.settings.data_dir / "demo_prospects.csv").read_bytes()
        added["prospects"] = import_prospects(app, data, source="demo").accepted
    return added
