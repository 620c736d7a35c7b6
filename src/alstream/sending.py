"""Reading a user's file into stream messages (CSV rows or JSONL lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pandas as pd


def read_messages(path: Path, *, label_column: str = "label", id_column: str = "id") -> list[dict[str, Any]]:
    """Messages for ``POST /send``: a CSV row becomes a sample whose features map column to value;
    a JSONL line is taken as it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        lines = path.read_bytes().splitlines()
        try:
            return [orjson.loads(line) for line in lines if line.strip()]
        except orjson.JSONDecodeError as error:
            raise ValueError(f"{path.name}: a line is not valid JSON: {error}") from None
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path.name}: send a .csv or .jsonl file")
    frame = pd.read_csv(path, dtype={label_column: str, id_column: str})
    messages = []
    features = [c for c in frame.columns if c not in (label_column, id_column)]
    for row in frame.to_dict(orient="records"):
        message: dict[str, Any] = {"features": {name: row[name] for name in features}}
        if id_column in row and pd.notna(row[id_column]):
            message["id"] = str(row[id_column])
        if label_column in row and pd.notna(row[label_column]):
            message["label"] = str(row[label_column])
        messages.append(message)
    return messages
