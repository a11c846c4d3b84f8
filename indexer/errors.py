"""Typed errors: every bad input becomes one of these, with a message a person can act on."""
from __future__ import annotations


class DupesiftError(Exception):
    """Base class for errors dupesift reports instead of crashing."""


class ImageError(DupesiftError):
    """A file could not be turned into pixels. ``reason`` is a short machine-readable tag."""

    reason = "unreadable"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class EmptyFile(ImageError):
    reason = "empty"


class NotAnImage(ImageError):
    reason = "not-an-image"


class CorruptImage(ImageError):
    reason = "corrupt"


class ImageTooLarge(ImageError):
    reason = "too-large"


class UnreadableFile(ImageError):
    reason = "unreadable"


class ModelError(DupesiftError):
    """The embedding model is missing, malformed or produced unusable vectors."""


class StoreBusy(DupesiftError):
    """The Milvus Lite file is held by another process."""


class CatalogError(DupesiftError):
    """The catalog database cannot be used."""


class MissingExtra(DupesiftError):
    """A command needs an optional extra (``pip install 'dupesift[extra]'``) that is not installed."""
