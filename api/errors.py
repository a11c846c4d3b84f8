"""JSON errors with clear messages; bad input never becomes a 500."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from indexer.browse import BadCursor
from indexer.errors import DupesiftError, EmptyFile, ImageError, ImageTooLarge, ModelError, StoreBusy
from indexer.resolution import ResolutionError


class ApiError(DupesiftError):
    """An error with its HTTP status, raised by helpers below the routers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(MemoryError)
    async def _memory(_: Request, exc: MemoryError) -> JSONResponse:
        return JSONResponse({"detail": "the server ran out of memory for this request; retry later or send a "
                                       "smaller image"}, status_code=503, headers={"Retry-After": "10"})

    @app.exception_handler(ResolutionError)
    async def _resolution(_: Request, exc: ResolutionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(BadCursor)
    async def _cursor(_: Request, exc: BadCursor) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(ImageTooLarge)
    async def _too_large(_: Request, exc: ImageTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "reason": exc.reason}, status_code=413)

    @app.exception_handler(ImageError)
    async def _bad_image(_: Request, exc: ImageError) -> JSONResponse:
        status = 400 if isinstance(exc, EmptyFile) or exc.reason in ("empty", "corrupt", "truncated") else 415
        return JSONResponse({"detail": str(exc), "reason": exc.reason}, status_code=status)

    @app.exception_handler(ModelError)
    async def _model(_: Request, exc: ModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(StoreBusy)
    async def _busy(_: Request, exc: StoreBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(DupesiftError)
    async def _other(_: Request, exc: DupesiftError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)
