"""Security headers on every response: the page, its files, the API docs and the API itself.

The Content-Security-Policy lets a browser load and contact only the service itself, plus images
from the origins the project allows (``image_origins``); ``data:`` images never leave the browser.
No page of the service may be framed, sniffed into another type, or tell others where it was.

>>> content_security_policy(["https://cdn.example.org"]).split("; ")[1]
"img-src 'self' data: https://cdn.example.org"
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(image_origins: Sequence[str] = ()) -> str:
    """The policy: same origin only, images also from ``image_origins``; no framing, no plugins."""
    images = " ".join(["'self'", "data:", *image_origins])
    return "; ".join(
        [
            "default-src 'self'",
            f"img-src {images}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """ASGI middleware: adds the headers of :func:`security_headers` to every HTTP response."""

    def __init__(self, app: ASGIApp, image_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.headers = security_headers(image_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def security_headers(image_origins: Sequence[str] = ()) -> dict[str, str]:
    """Header name -> value, as every response carries them."""
    return {
        "Content-Security-Policy": content_security_policy(image_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    }
