"""Swagger UI works without internet access: ``/docs`` and everything it loads come from the
service itself, as the package ships them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from backup_api.routers.docs import ASSETS_DIR
from tests.support.serverproc import ServerProcess

ABSOLUTE_URL = re.compile(r"\b(?:https?:)?//[A-Za-z0-9.-]", re.IGNORECASE)


class References(HTMLParser):
    """Every URL the page makes the browser load: src/href attributes, and the paths the
    inline script hands to Swagger UI."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.urls.extend(re.findall(r"'(/[^']*)'", data))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("docs")))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.stop()


def test_docs_load_everything_from_the_service(service: httpx.Client) -> None:
    page = service.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Not one absolute URL: nothing points outside the service (the OAuth2 redirect is
    # built from window.location.origin).
    assert not ABSOLUTE_URL.search(page.text), ABSOLUTE_URL.findall(page.text)
    references = References()
    references.feed(page.text)
    expected = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
        "openapi.json": "application/json",
        "oauth2-redirect": "text/html",
    }
    seen: set[str] = set()
    for url in references.urls:
        assert url.startswith("/"), url
        response = service.get(url)
        assert response.status_code == 200, url
        suffix = next(s for s in expected if url.endswith(s))
        assert response.headers["content-type"].startswith(expected[suffix]), url
        seen.add(suffix)
        if suffix in (".js", ".css", ".png"):
            name = url.rsplit("/", 1)[1]
            assert response.content == (ASSETS_DIR / name).read_bytes(), url
            assert response.headers["cache-control"].startswith("public"), url
        if suffix == "oauth2-redirect":
            assert not ABSOLUTE_URL.search(response.text)
    assert seen == set(expected), references.urls
    # The page runs Swagger UI on this service's document.
    assert "SwaggerUIBundle(" in page.text
    assert "'/openapi.json'" in page.text


def test_packaged_assets_are_the_pinned_release_unchanged() -> None:
    package = json.loads((ASSETS_DIR / "package.json").read_text())
    assert package["name"] == "swagger-ui-dist"
    assert package["license"] == "Apache-2.0"
    assert "Apache License" in (ASSETS_DIR / "LICENSE").read_text()
    sums = (ASSETS_DIR / "SHA256SUMS").read_text().splitlines()
    assert len(sums) >= 5
    for line in sums:
        digest, name = line.split()
        assert hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest() == digest, name
    readme = (ASSETS_DIR / "README.md").read_text()
    assert f"`swagger-ui-dist` {package['version']}" in readme


def test_root_is_the_dashboard_and_other_paths_stay_json(service: httpx.Client) -> None:
    # The dashboard is at the root; without a session it asks to sign in.
    root = service.get("/")
    assert root.status_code == 303
    assert root.headers["location"] == "/login"
    for missing in ("/redoc", "/docs/assets/0.0.0/swagger-ui.css", "/docs/assets/x/../main.py"):
        response = service.get(missing)
        assert response.status_code == 404, missing
        assert response.json() == {"error": "Ressource introuvable"}
    # Only the assets may be cached; the API's answers never are.
    assert service.get("/openapi.json").headers["cache-control"] == "no-store"
    assert service.get("/health").headers["cache-control"] == "no-store"
