"""Query by example: an uploaded image or an indexed image id."""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from api.deps import IndexDep
from api.errors import ApiError
from api.schemas import Error, SimilarResponse
from indexer.decode import load_image
from indexer.errors import ImageTooLarge
from indexer.index import Index

router = APIRouter(prefix="/similar", tags=["similar"])
K = Annotated[int, Query(ge=1, le=1000)]
MinSim = Annotated[float, Query(ge=-1, le=1)]


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


def results(index: Index, hits: list[dict], min_similarity: float) -> SimilarResponse:
    kept = [r | {"thumbnail_url": f"/images/{r['id']}/thumbnail"} for r in hits if r["similarity"] >= min_similarity]
    return SimilarResponse(threshold=index.threshold, results=kept)


def query_upload(index: Index, data: bytes, k: int) -> list[dict]:
    """Decode an upload (under the lower upload pixel limit) and search with it."""
    if not data:
        raise ApiError(400, "the upload is empty")
    if sniff(data[:32]) is None:
        raise ApiError(415, "not a recognised image format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF)")
    st = index.settings
    try:
        d = load_image(data, max_pixels=min(st.max_pixels, st.upload_max_pixels), size=index.spec.input_size)
    except ImageTooLarge as exc:
        raise ImageTooLarge(f"{exc} for uploads (DUPESIFT_UPLOAD_MAX_PIXELS): send a smaller copy") from None
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


@router.post("", response_model=SimilarResponse, responses={
    400: {"model": Error}, 413: {"model": Error}, 415: {"model": Error}, 503: {"model": Error}})
async def similar_upload(index: IndexDep, request: Request, file: UploadFile, k: K = 10,
                         min_similarity: MinSim = -1.0) -> SimilarResponse:
    """Photos most like the uploaded one (multipart field ``file``). The upload is read into memory,
    checked by magic bytes and pixel count (``DUPESIFT_UPLOAD_MAX_PIXELS``), and never written into a library root."""
    limit = request.app.state.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"upload is over the {limit / (1024 * 1024):g} MB limit")
    hits = await search_upload(request, index, data, k)
    return results(index, hits, min_similarity)


@router.get("", response_model=SimilarResponse, responses={404: {"model": Error}})
def similar_by_id(index: IndexDep, image_id: Annotated[int, Query(ge=1, le=2**62)], k: K = 10,
                  min_similarity: MinSim = -1.0) -> SimilarResponse:
    """Photos most like an indexed one."""
    try:
        hits = index.similar_to_id(image_id, k)
    except KeyError:
        raise ApiError(404, f"no indexed image with id {image_id}") from None
    return results(index, hits, min_similarity)
