"""Transitional, not a command line: ``indexer/training/cli.py`` still imports ``require_extra`` from here.

The command line is ``dupesift/cli.py``. Delete this module once ``indexer/training/cli.py`` imports
``indexer.extras.require_extra`` itself.
"""
from indexer.extras import require_extra

__all__ = ["require_extra"]
