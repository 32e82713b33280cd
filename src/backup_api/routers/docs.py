"""Swagger UI, served with its assets from the package: backup hosts often have no internet
access, and a page loading its scripts from a CDN would stay blank there."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from backup_api.exceptions import NotFound

ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "swagger"
SWAGGER_UI_VERSION: str = json.loads((ASSETS_DIR / "package.json").read_text())["version"]

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS_PATH = "/docs/assets"

ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# The version is in every asset URL, so a browser may keep them: an upgrade changes the URL.
ASSET_CACHE = "public, max-age=604800"

router = APIRouter(include_in_schema=False)


@cache
def _asset(name: str) -> bytes:
    return (ASSETS_DIR / name).read_bytes()


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


@router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root_path(request)
    assets = f"{root}{ASSETS_PATH}/{SWAGGER_UI_VERSION}"
    return get_swagger_ui_html(
        openapi_url=root + (request.app.openapi_url or "/openapi.json"),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon-32x32.png",
        oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
        # No badge fetched from the public validator: the page talks to this service only.
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(ASSETS_PATH + "/{version}/{name}")
async def swagger_ui_asset(version: str, name: str) -> Response:
    media_type = ASSET_TYPES.get(name)
    if media_type is None or version != SWAGGER_UI_VERSION:
        raise NotFound()
    return Response(_asset(name), media_type=media_type, headers={"Cache-Control": ASSET_CACHE})
