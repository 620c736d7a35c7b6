"""The API docs at ``/docs``: Swagger UI from files installed with the package, never from a CDN.

Its script and stylesheet come from the ``fastapi-offline`` distribution (a pinned copy of
``swagger-ui-dist``), served under ``/docs/assets``; the page starts it from ``/static/docs.js``
(the Content-Security-Policy allows no inline script). ReDoc is not served.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI = Path(fastapi_offline.__file__).with_name("static")  # swagger-ui-bundle.js, swagger-ui.css
ASSETS = "/docs/assets"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" href="{assets}/favicon.png">
</head>
<body>
  <div id="swagger-ui" data-openapi="{openapi}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""


def mount_docs(app: FastAPI, url: str = "/docs") -> None:
    """Serve Swagger UI for ``app.openapi_url`` at ``url``, its files under ``/docs/assets``."""
    title, openapi = html.escape(f"{app.title} · API docs"), html.escape(app.openapi_url or "")
    body = _PAGE.format(title=title, assets=ASSETS, openapi=openapi)

    @app.get(url, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(body)

    app.mount(ASSETS, StaticFiles(directory=SWAGGER_UI), name="docs-assets")
