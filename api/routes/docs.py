"""`/docs` (Swagger UI) and `/redoc` from assets installed with the package (``fastapi-offline``): no CDN.

FastAPI's own pages load their scripts, styles and favicon from CDNs and so are blank offline; the app turns
them off (``docs_url=None``) and these routes serve the same pages with every asset under ``/docs-assets``.
"""
from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs-assets"

router = APIRouter(include_in_schema=False)
# The bundles still name outside sites (ReDoc's footer loads a logo from its CDN): the browser is told to fetch
# nothing but this server's own assets, so an offline page stays whole and an online one stays private.
OWN_ONLY = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                       "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'"}
assets = StaticFiles(directory=ASSETS)


@router.get("/docs")
def swagger(request: Request) -> HTMLResponse:
    app = request.app
    r = get_swagger_ui_html(
        openapi_url=app.openapi_url, title=f"{app.title} API", oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None})  # the default validator badge calls an outside site
    r.headers.update(OWN_ONLY)
    return r


@router.get("/docs/oauth2-redirect")
def swagger_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    app = request.app
    r = get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                       redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                       redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)
    r.headers.update(OWN_ONLY)
    return r
