"""The labeling page: plain static files shipped inside the package, served at ``/``.

Nothing comes from the internet: scripts (ES modules, no build step), styles and fonts are all
here (system fonts only). The page names the origins it may show images from (``image_origins``)
in a ``<meta>`` tag. Every file is revalidated on each load (``no-cache``; unchanged: 304), so a
browser never runs modules of two versions together after an upgrade.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC = Path(__file__).with_name("static")
IMAGE_ORIGINS_META = '<meta name="alstream-image-origins" content="">'


def page_html(image_origins: Sequence[str] = ()) -> str:
    """index.html, naming the allowed image origins (space-separated) for app.js."""
    named = html.escape(" ".join(image_origins), quote=True)
    text = (STATIC / "index.html").read_text(encoding="utf-8")
    return text.replace(IMAGE_ORIGINS_META, IMAGE_ORIGINS_META.replace('content=""', f'content="{named}"'))


class RevalidatedFiles(StaticFiles):
    """Static files with ``Cache-Control: no-cache``: cached, but asked about before each use."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_page(app: FastAPI, image_origins: Sequence[str] = ()) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""
    body = page_html(image_origins)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(body, headers={"Cache-Control": "no-cache"})

    app.mount("/static", RevalidatedFiles(directory=STATIC), name="static")
