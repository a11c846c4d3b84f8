"""Indexed photos: cached thumbnails and the original file, only as the catalog knows it.

A photo is served only while its file is a regular file (opened without following a link swapped in for it)
under a library root or the quarantine, holding the indexed content (``indexer/safefile.py``); otherwise 404.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import services
from api.deps import IndexDep, read
from api.errors import ApiError
from api.schemas import Error
from indexer.catalog.models import Image, ImageStatus
from indexer.errors import UnreadableFile
from indexer.index import Index
from indexer.safefile import CHUNK, NotServable, open_indexed
from indexer.thumbnails import DEFAULT_SIZE, SIZES, PixelBudget, thumbnail

router = APIRouter(prefix="/images", tags=["images"])
ImageId = Annotated[int, Path(ge=1, le=2**62)]
MEDIA = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
         "TIFF": "image/tiff", "HEIF": "image/heif", "HEIC": "image/heic", "AVIF": "image/avif", "MPO": "image/jpeg"}
ERRORS = {404: {"model": Error}, 415: {"model": Error}}


def indexed_image(_: Index, s: Session, image_id: int) -> Image:
    img = s.get(Image, image_id)
    if img is None or img.status != ImageStatus.indexed:
        raise ApiError(404, f"no indexed image with id {image_id}")
    return img


def open_photo(index: Index, img: Image) -> BinaryIO:
    """The photo's file, open, when it may be served (see the module docstring); 404 otherwise."""
    folders = [*services.library_roots(index), str(index.settings.quarantine_dir)]
    try:
        return open_indexed(img.path, size=img.bytes, mtime=img.mtime, sha256=img.sha256, folders=folders)
    except NotServable as exc:
        raise ApiError(404, f"image {img.id} cannot be served: {exc}") from None


def _thumbnail(index: Index, img: Image, size: int, budget: PixelBudget) -> str:
    st = index.settings
    with open_photo(index, img) as f:
        return str(thumbnail(f, sha256=img.sha256 or f"id{img.id}", size=size, thumbnails_dir=st.thumbnails_dir,
                             max_pixels=st.max_pixels, budget=budget, wait_s=st.thumbnail_wait_s))


@router.get("/{image_id}/thumbnail", response_class=FileResponse, responses=ERRORS | {
    200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}})
async def get_thumbnail(index: IndexDep, request: Request, image_id: ImageId,
                        size: Annotated[int, Query(description=f"longest side, one of {SIZES}")] = DEFAULT_SIZE
                        ) -> FileResponse:
    if size not in SIZES:
        raise ApiError(422, f"size must be one of {', '.join(map(str, SIZES))}")
    img = await read(index, indexed_image, image_id)
    try:
        out = await run_in_threadpool(_thumbnail, index, img, size, request.app.state.thumbnail_budget)
    except UnreadableFile as exc:
        raise ApiError(404, str(exc)) from exc
    return FileResponse(out, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while block := f.read(CHUNK):
            yield block


@router.get("/{image_id}/file", response_class=StreamingResponse, responses=ERRORS | {
    200: {"content": {"image/*": {}}, "description": "the original file"}})
async def get_file(index: IndexDep, image_id: ImageId) -> StreamingResponse:
    """The original file of an indexed photo (never any other path), streamed from the descriptor that was
    checked, so a link swapped in after the check is never followed."""
    img = await read(index, indexed_image, image_id)
    f = await run_in_threadpool(open_photo, index, img)
    return StreamingResponse(_chunks(f), media_type=MEDIA.get((img.format or "").upper(), "application/octet-stream"),
                             headers={"Content-Length": str(os.fstat(f.fileno()).st_size),
                                      "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
