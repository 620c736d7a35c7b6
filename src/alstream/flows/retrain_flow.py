"""A full retrain of the service's model as a Prefect flow: collect labels, train, score, publish.

The engine's online updates stay outside Prefect (they must land within a second); full
retrains, which refit on every label, run here so each is visible and timed in Prefect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

if TYPE_CHECKING:
    from alstream.service.engine import Engine
    from alstream.service.trainer import ModelVersion


@task(name="collect labels", cache_policy=NO_CACHE)
def collect_labels(engine: Engine) -> tuple[Any, Any]:
    return engine.training_data()


@task(name="train", cache_policy=NO_CACHE)
def train(engine: Engine, X: Any, y: Any, weights: Any = None) -> ModelVersion | None:
    return engine.fit_full(X, y, weights)


@task(name="score pool and publish", cache_policy=NO_CACHE)
def publish(engine: Engine, version: ModelVersion, pending: dict[str, float]) -> ModelVersion:
    return engine.publish(version, pending)


@flow(name="retrain", validate_parameters=False)
def retrain_flow(engine: Engine) -> int | None:
    """Refit on every current label; returns the new version number (None if training failed)."""
    pending = engine.pending()
    X, y = collect_labels(engine)
    version = train(engine, X, y, engine.training_weights())  # after a drift, older labels weigh less
    if version is None:
        return None
    return publish(engine, version, pending).version
