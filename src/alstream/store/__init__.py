"""The durable store: samples, labels and model versions in SQLite or PostgreSQL.

Every write is idempotent (samples by ``id``, labels by stream coordinates), so a batch
replayed after a crash is stored once. See :class:`Store`.
"""

from alstream.store.retry import is_transient, retry
from alstream.store.rows import LabelRow, SampleRow
from alstream.store.store import Store

__all__ = ["LabelRow", "SampleRow", "Store", "is_transient", "retry"]
