"""Optional extras: which modules each brings, and the check a command that needs one makes first."""
from __future__ import annotations

import importlib

from indexer.errors import MissingExtra

EXTRAS = {  # optional extra -> the modules its commands import
    "workers": ("celery", "kombu", "redis"),
    "train": ("torch", "kornia", "onnx", "efficientnet_lite_pytorch"),
}


def require_extra(extra: str, command: str) -> None:
    """Raise ``MissingExtra`` (one line naming the extra to install) when ``command`` needs a module it lacks."""
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            hint = " (install torch==2.13.0 first for the CPU build)" if extra == "train" else ""
            raise MissingExtra(f"`dupesift {command}` needs the `{extra}` extra, which is not installed (no module "
                               f"{module!r}): pip install 'dupesift[{extra}]'{hint}") from None
