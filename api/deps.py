"""Shared dependencies: the one Index a server process holds (Milvus Lite allows one process)."""
from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from indexer.config import Settings
from indexer.pipeline import Index


def get_index(request: Request) -> Index:
    return request.app.state.index


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(index: Annotated[Index, Depends(get_index)]) -> Iterator[Session]:
    """A read session for one request; writers commit explicitly through ``index.catalog.session()``."""
    with index.catalog.session() as s:
        yield s


IndexDep = Annotated[Index, Depends(get_index)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


TOKEN_COOKIE = "dupesift_token"


def require_token(request: Request) -> None:
    """Bearer auth, enforced whenever the server binds a non-loopback address.

    Browsers (the web UI) may carry the token in the ``dupesift_token`` cookie instead (see /ui/login).
    """
    if not request.app.state.auth_required or request.url.path == "/ui/login":
        return
    expected = request.app.state.settings.api_token or ""
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
    if not given or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer $DUPESIFT_API_TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})
