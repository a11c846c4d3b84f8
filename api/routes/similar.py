"""Query by example: an uploaded image or an indexed image id."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, UploadFile

from api import uploads
from api.deps import IndexDep
from api.errors import ApiError
from api.schemas import Error, SimilarResponse, SimilarResult
from indexer.index import Index

router = APIRouter(prefix="/similar", tags=["similar"])
K = Annotated[int, Query(ge=1, le=1000)]
MinSim = Annotated[float, Query(ge=-1, le=1)]


def results(index: Index, hits: list[dict], min_similarity: float) -> SimilarResponse:
    kept = [SimilarResult(**r, thumbnail_url=f"/images/{r['id']}/thumbnail") for r in hits
            if r["similarity"] >= min_similarity]
    return SimilarResponse(threshold=index.threshold, results=kept)


@router.post("", response_model=SimilarResponse, responses={
    400: {"model": Error}, 413: {"model": Error}, 415: {"model": Error}, 503: {"model": Error}})
async def similar_upload(index: IndexDep, request: Request, file: UploadFile, k: K = 10,
                         min_similarity: MinSim = -1.0) -> SimilarResponse:
    """Photos most like the uploaded one (multipart field ``file``). The upload is read into memory,
    checked by magic bytes and pixel count (``DUPESIFT_UPLOAD_MAX_PIXELS``), and never written into a library root."""
    data = await uploads.read_upload(request, file)
    return results(index, await uploads.search_upload(request, index, data, k), min_similarity)


@router.get("", response_model=SimilarResponse, responses={404: {"model": Error}})
def similar_by_id(index: IndexDep, image_id: Annotated[int, Query(ge=1, le=2**62)], k: K = 10,
                  min_similarity: MinSim = -1.0) -> SimilarResponse:
    """Photos most like an indexed one."""
    try:
        hits = index.similar_to_id(image_id, k)
    except KeyError:
        raise ApiError(404, f"no indexed image with id {image_id}") from None
    return results(index, hits, min_similarity)
