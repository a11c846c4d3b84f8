"""Errors as HTTP answers: one table from exception type to status, used by the JSON API and the web pages."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from indexer.browse import BadCursor
from indexer.errors import (
    CorruptImage,
    DupesiftError,
    EmptyFile,
    ImageError,
    ImageTooLarge,
    ModelError,
    StoreBusy,
)
from indexer.fsnames import to_text
from indexer.resolution import GroupNotFound, ResolutionConflict, ResolutionError, UnknownAction
from indexer.thumbnails import ThumbnailsBusy


class ApiError(DupesiftError):
    """An error with its HTTP status, raised by the API's own checks."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


# The status of an error is that of the first type here it is an instance of (so a subclass comes before its base).
# Bad input is 4xx and never a 500; a server that cannot serve right now (model, store, memory) is 503.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (GroupNotFound, 404),
    (ResolutionConflict, 409),
    (UnknownAction, 422),
    (ResolutionError, 400),
    (ImageTooLarge, 413),
    (EmptyFile, 400),
    (CorruptImage, 400),  # corrupt or truncated: the bytes are an image type we read, badly formed
    (ImageError, 415),  # not an image, or unreadable
    (ModelError, 503),
    (StoreBusy, 503),
    (ThumbnailsBusy, 503),
    (MemoryError, 503),
    (BadCursor, 400),
    (DupesiftError, 400),
    (ValueError, 400),  # web forms: a value the request model refuses
)
MEMORY_MESSAGE = "the server ran out of memory for this request; retry later or send a smaller image"


def status_for(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def error_body(exc: BaseException) -> dict:
    """``{"detail": message}``, with the image error's ``reason`` tag (``empty``, ``corrupt``, ...)."""
    body: dict = {"detail": MEMORY_MESSAGE if isinstance(exc, MemoryError) else to_text(str(exc))}
    if isinstance(exc, ImageError):
        body["reason"] = exc.reason
    return body


def error_headers(exc: BaseException) -> dict[str, str] | None:
    if isinstance(exc, ApiError):
        return exc.headers
    return {"Retry-After": "10"} if isinstance(exc, MemoryError) else None


async def _json(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=status_for(exc), headers=error_headers(exc))


def install(app: FastAPI) -> None:
    """Answer every error of the table as JSON (ValueError only through the types above that derive from it)."""
    for kind in (DupesiftError, MemoryError, BadCursor):
        app.add_exception_handler(kind, _json)
