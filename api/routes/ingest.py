"""Start ingests (only under the library roots) and follow their jobs."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from api import services
from api.deps import IndexDep, read
from api.errors import ApiError
from api.schemas import Error, IngestAccepted, IngestRequest, JobOut, JobsResponse
from indexer.catalog.models import Job

router = APIRouter(tags=["ingest"])


@router.post("/ingest", response_model=IngestAccepted, status_code=202, responses={
    400: {"model": Error}, 403: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}})
def ingest(index: IndexDep, request: Request, req: IngestRequest) -> IngestAccepted:
    """Index photos under ``paths`` in the background; follow progress at ``GET /jobs/{id}``."""
    paths = services.check_paths(req.paths, services.library_roots(index))
    job_id = request.app.state.ingest.start(paths, prune_empty=req.prune_empty)
    return IngestAccepted(job_id=job_id, status="queued", url=f"/jobs/{job_id}")


@router.get("/jobs", response_model=JobsResponse)
async def list_jobs(index: IndexDep, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> JobsResponse:
    def jobs(_, s) -> JobsResponse:
        rows = s.scalars(select(Job).order_by(Job.created_at.desc()).limit(limit))
        return JobsResponse(jobs=[services.job_out(s, j, failures=0) for j in rows])

    return await read(index, jobs)


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": Error}})
async def get_job(index: IndexDep, job_id: Annotated[str, Path(max_length=64)]) -> JobOut:
    def job(_, s) -> JobOut:
        row = s.get(Job, job_id)
        if row is None:
            raise ApiError(404, f"no job with id {job_id}")
        return services.job_out(s, row)

    return await read(index, job)
