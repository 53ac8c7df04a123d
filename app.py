"""Entry point of the Sam Funnel cost console. `make run` serves it through `serve.py` (which also gates uploads
and downloads); `streamlit run app.py` works too, without that HTTP gate."""

from __future__ import annotations

from console import shell

shell()
