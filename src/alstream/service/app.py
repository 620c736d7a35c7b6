"""The FastAPI application: the routers plus the background runtime, on the settings given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import HTTPExceptionHandler

from alstream.errors import NoModelYet
from alstream.messages import InvalidBatch
from alstream.service.bodies import WholeBody
from alstream.service.docs import mount_docs
from alstream.service.headers import SecurityHeaders
from alstream.service.openapi_document import document
from alstream.service.page import mount_page
from alstream.service.routes import labels, models, project, queue, send, tokens
from alstream.service.runtime import Runtime
from alstream.service.versions import Orchestrator
from alstream.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    consume: bool = True,
    track: bool | None = None,
    orchestrator: Orchestrator | None = None,
    stateless: bool = False,
) -> FastAPI:
    """The service; its consumer and engine start with the app and stop with it. ``track``: log
    versions to MLflow (None: the ``mlflow`` setting); ``orchestrator``: records full retrains after
    they serve (``alstream serve`` makes it from the ``orchestrator`` setting; None: not recorded);
    ``stateless``: one of several API replicas, its queue leased from the store's candidates."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(
            settings, consume=consume, track=track, orchestrator=orchestrator, stateless=stateless
        )
        app.state.runtime = runtime
        if runtime.first_token:  # first start: the one time this token is shown (as Jupyter does)
            token = runtime.first_token
            url = f"http://{settings.host}:{settings.port}/#token={token}"
            print(
                f"alstream made an admin token; it is shown only now:\n    {token}\nLabel at {url}\n"
                "More tokens: alstream token create --role annotator",
                flush=True,
            )
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="alstream",
        summary="Active learning on a live data stream: pick what people label, learn faster.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from the package instead of a CDN (mount_docs)
        redoc_url=None,  # ReDoc would come from a CDN: off
    )
    for routes in (send, labels, queue, project, models, tokens):
        app.include_router(routes.router)
    document(app, settings.project)
    # Starlette calls each handler with its own class of error; its types take any Exception.
    app.add_exception_handler(RequestValidationError, cast(HTTPExceptionHandler, _invalid_request))
    app.add_exception_handler(InvalidBatch, cast(HTTPExceptionHandler, _invalid_batch))
    app.add_exception_handler(NoModelYet, cast(HTTPExceptionHandler, _no_model_yet))
    app.add_exception_handler(405, _method_not_allowed)
    mount_page(app, settings.image_origins)
    mount_docs(app)
    # Small bodies where the route takes small ones: FastAPI decodes those on the event loop.
    limits = {"/predict": settings.max_predict_bytes, "/tokens": 64 * 1024, "/queue/release": 2 * 1024 * 1024}
    app.add_middleware(
        WholeBody, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s, limits=limits
    )
    if settings.cors_origins:  # off by default: the page is served from the same origin
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=[queue.PAUSED_HEADER],
        )
    app.add_middleware(SecurityHeaders, image_origins=settings.image_origins)  # outermost: on every answer
    return app


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's checks of a query or body, answered in the shape of every 422 (``detail``, then
    ``errors`` naming each field); the bad input itself is not echoed (NaN, an infinity or a huge
    integer could not be written back as JSON)."""
    errors = [  # loc and msg only: the input (bytes that are not UTF-8, NaN) is never written back
        {"index": -1, "id": None, "field": ".".join(map(str, e["loc"])), "message": str(e["msg"])}
        for e in error.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
    return JSONResponse(status_code=422, content={"detail": detail, "errors": errors})


async def _invalid_batch(request: Request, error: InvalidBatch) -> JSONResponse:
    """The messages' checks of a body (:mod:`alstream.messages`): 422 naming each bad item and field."""
    errors = [{"index": e.index, "id": e.id, "field": e.field, "message": e.message} for e in error.errors]
    return JSONResponse(status_code=422, content={"detail": str(error), "errors": errors})


async def _no_model_yet(request: Request, error: NoModelYet) -> JSONResponse:
    """409: the service has no model to answer with yet (``/predict`` before the first version)."""
    return JSONResponse(status_code=409, content={"detail": str(error)})


async def _method_not_allowed(request: Request, error: Exception) -> JSONResponse:
    """405 with every method the path takes in ``Allow`` (Starlette names only the first route's)."""
    path = request.url.path
    routes = [r for r in request.app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)]
    allowed = {method for route in routes for method in route.methods or ()}  # an APIRoute's is set
    return JSONResponse(
        status_code=405,
        content={"detail": "Method Not Allowed"},
        headers={"Allow": ", ".join(sorted(allowed))},
    )
