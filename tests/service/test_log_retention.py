"""The service on the embedded log: what the consumer stored leaves the log, the rest stays."""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_digits

from alstream.stream.topic import TopicFiles

from .conftest import demo_service, service_settings, wait_for

DIGITS_X = load_digits().data
SEGMENT = 8 * 1024


def topic_bytes(files: TopicFiles) -> int:
    return sum(segment.path.stat().st_size for segment in files.segments())


def test_the_samples_topic_keeps_only_what_the_consumer_has_not_stored(tmp_path: Path, request):
    settings = service_settings(tmp_path, "embedded", request, log_segment_bytes=SEGMENT, log_retention_s=0)
    samples = TopicFiles(settings.data_dir / "log", settings.samples_topic)
    with demo_service(settings) as client:
        stored = client.get("/stats").json()["store"]["samples"]
        demo_bytes = topic_bytes(samples)  # the demo's samples: one segment, far larger than SEGMENT
        for n in range(30):
            batch = [{"id": f"new-{n}-{i}", "features": DIGITS_X[i].tolist()} for i in range(20)]
            assert client.post("/send", json=batch).status_code == 202
            stored += len(batch)
            wait_for(
                lambda want=stored: client.get("/stats").json()["store"]["samples"] == want, what="the batch"
            )
        oldest = samples.segments()[0].base
        assert oldest > 1797  # the demo's segment and the first batches' are gone
        assert topic_bytes(samples) < min(demo_bytes, 4 * SEGMENT)
