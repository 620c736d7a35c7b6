"""The OpenAPI document, for this service's project: the request bodies of ``/send``, ``/labels``
and ``/predict`` say exactly what the project accepts (its classes, its features, every length and
character rule: :mod:`alstream.messages.openapi`), beside the routes' own models and error answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from alstream.messages import ProjectSchema
from alstream.messages.openapi import labels_body, meta_value, predict_body, request_body, send_body


def document(app: FastAPI, project: ProjectSchema) -> None:
    """Make ``app.openapi()`` describe ``project``'s request bodies (built once, on first use)."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = default()
            paths = schema["paths"]
            examples = _examples(project)
            for path, body in (("/send", send_body), ("/labels", labels_body), ("/predict", predict_body)):
                paths[path]["post"]["requestBody"] = request_body(body(project), examples[path])
            schema.setdefault("components", {}).setdefault("schemas", {})["MetaValue"] = meta_value()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _examples(project: ProjectSchema) -> dict[str, list[Any]]:
    first, label = project.classes[0], project.classes[-1]
    if project.data == "text":
        sample: dict[str, Any] = {
            "id": "s-1",
            "text": "arrived broken",
            "meta": {"source": "mail"},
        }
        predict: dict[str, Any] = {"texts": ["arrived broken"]}
    else:
        n = project.n_features or 3
        sample = {"id": "s-1", "features": [0.0] * n, "meta": {"source": "camera-2"}}
        predict = {"features": [[0.0] * n]}
    return {
        "/send": [[sample, {"kind": "label", "id": "s-1", "label": first, "annotator": "ana"}]],
        "/labels": [{"id": "s-1", "label": label, "annotator": "ana"}, {"id": "s-2", "skipped": True}],
        "/predict": [predict],
    }


__all__ = ["document"]
