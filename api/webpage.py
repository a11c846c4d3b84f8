"""What every web page shares: the templates and their filters, and errors answered as pages.

A web route never answers JSON: a bad query value, a path id that is not a number, a bad cursor, a missing
token or an error of the core each become an HTML page (or, for an htmx request, a fragment that the page shows
in place) with the status the JSON API would give (``api/errors.py``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from api.errors import status_for
from indexer.errors import DupesiftError

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))

# what a person reads for a group's resolution (the API's action names stay internal)
RESOLUTIONS = {"move_others": "copies moved to quarantine", "trash_others": "copies moved to quarantine (trash)",
               "keep_all": "kept all"}


def human_bytes(n: float | None) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _date(t: float | str | None) -> str:
    if isinstance(t, str):
        try:
            return datetime.fromisoformat(t).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return t
    return datetime.fromtimestamp(t or 0, UTC).strftime("%Y-%m-%d %H:%M")


templates.env.filters["bytes"] = human_bytes
templates.env.filters["basename"] = os.path.basename
templates.env.filters["dirname"] = os.path.dirname
templates.env.filters["date"] = _date
templates.env.filters["resolution"] = lambda r: RESOLUTIONS.get(r or "", r or "")


def page(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
         **ctx: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, template, ctx, status_code=status, headers=headers)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def error_page(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    """A full page; for an htmx request the fragment that the page shows in its message area (``#messages``,
    announced to screen readers), whatever the request targeted, so an error never replaces what is on screen."""
    htmx = is_htmx(request)
    headers = dict(headers or {})
    if htmx:
        headers.update({"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"})
    return page(request, "_error.html", status=status, headers=headers, message=message, status_code=status,
                full=not htmx)


def error_for(request: Request, exc: Exception) -> HTMLResponse:
    return error_page(request, status_for(exc), str(exc))


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    """404 for a path id that is not one (``/ui/groups/abc``), 400 for a bad query or form value."""
    errs = exc.errors()
    if any(e.get("loc", ("",))[0] == "path" for e in errs):
        return 404, "no such page: the address names something that does not exist"
    parts = []
    for e in errs[:3]:
        name = str(e.get("loc", ("", "?"))[-1])
        msg = e.get("msg", "invalid")
        parts.append(f"{name}: {msg}")
    return 400, "bad request: " + "; ".join(parts)


class PageRoute(APIRoute):
    """A route whose every error is a page, never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def as_page(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                status, message = _validation_message(exc)
                return error_page(request, status, message)
            except HTTPException as exc:
                return error_page(request, exc.status_code, str(exc.detail), headers=exc.headers)
            except (DupesiftError, ValueError) as exc:
                return error_for(request, exc)

        return as_page
