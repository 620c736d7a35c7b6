"""The FastAPI application: the routes plus the background runtime, on the settings given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from alstream.service.api import router
from alstream.service.page import mount_page
from alstream.service.runtime import Runtime
from alstream.settings import Settings


def create_app(settings: Settings | None = None, *, consume: bool = True, track: bool = True) -> FastAPI:
    """The service; its consumer and engine start with the app and stop with it."""
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, consume=consume, track=track)
        app.state.runtime = runtime
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
    )
    app.include_router(router)
    mount_page(app)
    return app
