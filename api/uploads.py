"""Uploads: the request body limit, the image type by magic bytes, and query by example under the upload limits.

Every upload is held to one byte limit (``app.state.max_upload_bytes``, 413 above it), first by ``BodyLimit``
before any router or form parser reads the body, then by ``read_upload`` on the file itself. An upload is never
written into a library root.
"""
from __future__ import annotations

import asyncio
import json

from fastapi import Request, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError
from indexer import verify
from indexer.decode import load_image, open_image
from indexer.errors import ImageTooLarge
from indexer.index import Index

BODY_SLACK = 64 * 1024  # multipart boundaries and headers around a file of exactly the limit
# Every body that is not a multipart upload (JSON, web forms): far below the upload limit, since a JSON parser
# holds several times the body's size in memory
MAX_FORM_BYTES = 1024 * 1024


def over_limit(limit: int) -> str:
    return f"upload is over the {limit / (1024 * 1024):g} MB limit"


async def read_upload(request: Request, file: UploadFile) -> bytes:
    """The uploaded file's bytes; 413 when it is over the upload limit."""
    limit = request.app.state.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, over_limit(limit))
    return data


def sniff(head: bytes) -> str | None:
    """The image type from magic bytes (never from the file name or the client's content type)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1",
                                               b"avif", b"avis"):
        return "heif"
    return None


def decoded_pixels(width: int, height: int, fmt: str | None, side: int) -> int:
    """The pixels a photo decodes to when both its sides need only be ``side``: a JPEG draft-decodes at 1/2, 1/4
    or 1/8 scale (the DCT does the shrinking), any other format at full size."""
    if fmt != "JPEG":
        return width * height
    scale = 1
    while scale < 8 and min(width, height) // (scale * 2) >= side:
        scale *= 2
    return -(-width // scale) * -(-height // scale)


def check_upload_pixels(data: bytes, max_pixels: int, upload_max_pixels: int, side: int) -> None:
    """The upload limit is on the pixels an upload decodes to, so memory bounds it, not the camera: a 48-200 MP
    phone JPEG decodes at 1/8 scale. ``max_pixels`` (the bomb guard) still bounds the header's size."""
    with open_image(data, max_pixels) as im:  # the header only
        (w, h), fmt = im.size, (im.format or "").upper()
    n = decoded_pixels(w, h, fmt, side)
    if n > upload_max_pixels:
        raise ImageTooLarge(f"{w}x{h} decodes to {n / 1e6:.0f} MP, over the {upload_max_pixels / 1e6:.0f} MP upload "
                            "limit (DUPESIFT_UPLOAD_MAX_PIXELS): send a smaller copy, or a JPEG")


def query_upload(index: Index, data: bytes, k: int) -> list[dict]:
    """Decode an upload (under the upload pixel limit, on what it decodes to) and search with it."""
    if not data:
        raise ApiError(400, "the upload is empty")
    if sniff(data[:32]) is None:
        raise ApiError(415, "not a recognised image format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF)")
    st = index.settings
    try:
        # both decodes of the query (model pixels, keypoints) draft no larger than this
        check_upload_pixels(data, st.max_pixels, st.upload_max_pixels, max(index.spec.input_size, verify.SIDE))
        d = load_image(data, max_pixels=st.max_pixels, size=index.spec.input_size)
    except ImageTooLarge as exc:
        if "upload limit" in str(exc):
            raise
        raise ImageTooLarge(f"{exc} for uploads (DUPESIFT_MAX_PIXELS): send a smaller copy") from None
    except MemoryError:
        raise ApiError(503, "not enough memory to decode this upload now: retry later or send a smaller image",
                       {"Retry-After": "10"}) from None
    return index.similar_to_pixels(d.pixels, k, source=data)


async def search_upload(request: Request, index: Index, data: bytes, k: int) -> list[dict]:
    """``query_upload`` on the threadpool, at most ``upload_decodes`` at a time (each can hold hundreds of MB)."""
    gate: asyncio.Semaphore = request.app.state.upload_gate
    try:
        await asyncio.wait_for(gate.acquire(), timeout=index.settings.upload_wait_s)
    except TimeoutError:
        raise ApiError(503, "too many uploads are being decoded right now: retry in a few seconds",
                       {"Retry-After": "5"}) from None
    try:
        return await run_in_threadpool(query_upload, index, data, k)
    finally:
        gate.release()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a request body passes the limit (FastAPI re-raises HTTPException
    unchanged from its body parsing, so the form parser stops there)."""


class BodyLimit:
    """Pure ASGI: refuse a request body over ``app.state.max_upload_bytes`` (a multipart upload) or
    ``MAX_FORM_BYTES`` (any other body) with 413.

    Checks Content-Length up front, then counts the bytes ``receive()`` hands over, so a chunked body
    (no Content-Length) or one longer than it claims is cut off at the limit instead of being spooled
    to disk in full by the multipart parser.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            limit = scope["app"].state.max_upload_bytes
            message, allowed = over_limit(limit), limit + BODY_SLACK
        else:
            limit = allowed = MAX_FORM_BYTES
            message = f"request body is over the {limit // 1024} KB limit of JSON and form requests"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > allowed:
            await _refuse(send, message)
            return
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > allowed:
                    over = True
                    raise BodyTooLarge(413, message)
            return msg

        async def guarded(msg: Message) -> None:
            nonlocal started
            if over:  # whatever the app made of the cut-off body, the answer is our 413 (sent below)
                return
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _refuse(send, message)


async def _refuse(send: Send, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})  # the rest of the body is never read: close rather than keep alive
    await send({"type": "http.response.body", "body": body})
