"""The labeling page: plain static files shipped inside the package, served at ``/``.

Nothing comes from the internet: scripts, styles and fonts are all here (system fonts only).
The page names the origins it may show images from (``image_origins``) in a ``<meta>`` tag.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
IMAGE_ORIGINS_META = '<meta name="alstream-image-origins" content="">'


def page_html(image_origins: Sequence[str] = ()) -> str:
    """index.html, naming the allowed image origins (space-separated) for app.js."""
    named = html.escape(" ".join(image_origins), quote=True)
    text = (STATIC / "index.html").read_text(encoding="utf-8")
    return text.replace(IMAGE_ORIGINS_META, IMAGE_ORIGINS_META.replace('content=""', f'content="{named}"'))


def mount_page(app: FastAPI, image_origins: Sequence[str] = ()) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""
    body = page_html(image_origins)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(body, headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
