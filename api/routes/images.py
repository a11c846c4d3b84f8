"""Indexed photos: metadata, cached thumbnails, the original file."""
from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import IndexDep, read
from api.errors import ApiError
from api.schemas import Error
from indexer.catalog.models import Image, ImageStatus
from indexer.errors import UnreadableFile
from indexer.index import Index
from indexer.thumbnails import DEFAULT_SIZE, SIZES, thumbnail

router = APIRouter(prefix="/images", tags=["images"])
ImageId = Annotated[int, Path(ge=1, le=2**62)]
MEDIA = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
         "TIFF": "image/tiff", "HEIF": "image/heif", "HEIC": "image/heic", "AVIF": "image/avif", "MPO": "image/jpeg"}
ERRORS = {404: {"model": Error}, 415: {"model": Error}}


def indexed_image(_: Index, s: Session, image_id: int) -> Image:
    img = s.get(Image, image_id)
    if img is None or img.status != ImageStatus.indexed:
        raise ApiError(404, f"no indexed image with id {image_id}")
    if not os.path.isfile(img.path):
        raise ApiError(404, f"image {image_id} is no longer on disk at {img.path}")
    return img


@router.get("/{image_id}/thumbnail", response_class=FileResponse, responses=ERRORS | {
    200: {"content": {"image/jpeg": {}}, "description": "JPEG thumbnail"}})
async def get_thumbnail(index: IndexDep, image_id: ImageId,
                        size: Annotated[int, Query(description=f"longest side, one of {SIZES}")] = DEFAULT_SIZE
                        ) -> FileResponse:
    if size not in SIZES:
        raise ApiError(422, f"size must be one of {', '.join(map(str, SIZES))}")
    img = await read(index, indexed_image, image_id)
    st = index.settings
    try:
        out = await run_in_threadpool(thumbnail, img.path, sha256=img.sha256 or f"id{img.id}", size=size,
                                      thumbnails_dir=st.thumbnails_dir, max_pixels=st.max_pixels)
    except UnreadableFile as exc:
        raise ApiError(404, str(exc)) from exc
    return FileResponse(out, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/{image_id}/file", response_class=FileResponse, responses=ERRORS | {
    200: {"content": {"image/*": {}}, "description": "the original file"}})
async def get_file(index: IndexDep, image_id: ImageId) -> FileResponse:
    """The original file of an indexed photo (never any other path)."""
    img = await read(index, indexed_image, image_id)
    return FileResponse(img.path, media_type=MEDIA.get((img.format or "").upper(), "application/octet-stream"),
                        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
