"""Sam Funnel cost console engine.

Everything the console decides lives here; this package never imports Streamlit, so the same engine serves
the pages, the CLI (`python -m core`) and background workers.
"""

__version__ = "0.1.0"
