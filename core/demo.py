"""Demo data for the embedded default: synthetic prospects and starter templates from `data/`.

Loaded once, on first start, into an empty database; never touches a database that already has data.
`core.app` does not know about it (that was an import cycle: app -> demo -> prospects -> app); the console
and the CLI start from :func:`open_demo_app`.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.app import App, open_app
from core.config import Settings
from core.messages.library import seed_templates
from core.people.prospects import count_prospects, import_prospects


@dataclass(frozen=True)
class DemoLoad:
    """What loading the demo data added (0 and 0 on a database that already had its data)."""

    templates: int
    prospects: int


def open_demo_app(settings: Settings | None = None) -> App:
    """`open_app`, then the demo data when the database has none (the console's and the CLI's start)."""
    app = open_app(settings)
    load_demo_data(app)
    return app


def load_demo_data(app: App) -> DemoLoad:
    """The starter templates into an empty library, and the demo prospects when there are no prospects."""
    templates = seed_templates(app)
    prospects = 0
    if count_prospects(app) == 0:
        data = (app.settings.data_dir / "demo_prospects.csv").read_bytes()
        prospects = import_prospects(app, data, source="demo").accepted
    return DemoLoad(templates=templates, prospects=prospects)
