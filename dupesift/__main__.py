"""``python -m dupesift ...`` is ``dupesift ...``."""
from dupesift.cli import app

app(prog_name="dupesift")
