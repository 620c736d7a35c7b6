"""What ``GET /stats`` answers: :class:`EngineStats` from a full service, :class:`ReplicaStats` from a
stateless replica (``alstream serve --stateless``), the numbers of :mod:`alstream.service.engine`
and :mod:`alstream.service.shared_queue` checked against them (:func:`stats_out`).

A key the engine adds and these models do not name fails the check (``extra="forbid"``): the
models stay the shape that is sent. A key absent from the numbers stays absent from the answer (the
route serialises with ``exclude_unset``): a drift event has its model's number only once one serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter


class _Out(BaseModel):
    """A part of ``/stats``: every key named, none other accepted."""

    model_config = ConfigDict(extra="forbid")


class PoolCounts(_Out):
    """A pool's size and bound, its reservoir, and what arrived and left."""

    pool: int = Field(description="Samples in the pool now.")
    max_pool: int | None = Field(description="The pool's bound (None: unbounded).")
    reservoir: int = Field(description="Samples in the reservoir the random share is drawn from.")
    arrivals: int
    evicted: int = Field(description="Pushed out by a more uncertain arrival.")
    rejected: int = Field(description="Less uncertain than the pool's least, when it was full.")
    aged_out: int
    removed: int = Field(description="Left the pool once labeled or skipped.")
    passed: int = Field(description="Not asked about (the selective strategy passed).")


class StoreCounts(_Out):
    """The store's rows (labeled and skipped: by each sample's latest label)."""

    samples: int
    labeled: int
    skipped: int
    labels_total: int = Field(description="Label events, skips included.")


class CurvePoint(_Out):
    """One model version on the learning curve; its metrics as further keys (numbers)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, float] = Field(init=False)

    version: int
    kind: str = Field(description="'full' or 'online'.")
    n_labels: int
    drift: bool = Field(description="Whether a drift was detected since the version before.")


class Latency(_Out):
    """Seconds from a label's arrival to the model that learned it."""

    p50: float
    p90: float


class WaitingLabels(_Out):
    held: int = Field(description="Labels of samples not arrived yet, held until they do.")
    dropped: int = Field(description="Such labels forgotten, the oldest first, past the bound.")


class RetentionCounts(_Out):
    """Retention's counts that add up over shards."""

    deleted: int = Field(description="Unlabeled samples deleted from the store past retention_s.")
    waiting_to_leave_pool: int = Field(description="Past retention_s, kept while in the pool.")
    left_pool: int = Field(
        0, description="Past retention_s, left the pool since: deleted together, once they are many."
    )
    overdue: int = Field(description="Arrived over retention_s ago, not looked at yet.")
    not_looked_at: int = Field(description="Followed, not yet looked at.")
    behind: bool = Field(description="The last step ran out of time with more due.")


class _RetentionPeriod(_Out):
    retention_s: float = Field(description="How long an unlabeled sample is kept (s).")


class RetentionState(RetentionCounts, _RetentionPeriod):  # retention_s first, as Retention.state
    busy_s: float = Field(description="Time spent in retention's steps, all told.")


class DriftEvent(BaseModel):
    """A drift detected (river's ADWIN)."""

    model_config = ConfigDict(extra="forbid")

    signal: str = Field(description="'accuracy' (on the random share) or 'scores' (of the arrivals).")
    at: float = Field(description="When (Unix time).")
    estimate: float
    model_version: int | None = Field(None, description="The version that served (absent before one).")
    n_labels: int | None = Field(None, description="Its labels (absent before a version served).")


class DriftState(_Out):
    detected: int
    events: list[DriftEvent] = Field(description="The newest drifts.")
    audit_accuracy: float | None = Field(description="ADWIN's accuracy estimate on the random share.")
    audit_window: int
    random_share: float = Field(description="The queue's random share now (raised after a drift).")


class SelectiveState(_Out):
    """The selective strategy and its label budget."""

    strategy: str = Field(description="The selector's class.")
    labels_per_hour: float | Literal["auto"] = Field(description="The budget: a number, or 'auto'.")
    measured_labels_per_hour: float
    arrivals_per_hour: float
    share: float = Field(description="The share of arrivals it may ask about now.")


class StoppingState(_Out):
    """The stopping rule: stabilizing predictions on a fixed stop set."""

    rule: str
    kappa: float | None = Field(description="Mean Cohen's kappa of the last comparisons.")
    kappas: list[float]
    stable: bool
    since_version: int | None = Field(description="The first version of the current stable run.")
    compared_version: int | None
    compared_labels: int | None
    step_labels: int
    stop_set: int = Field(description="Samples in the stop set.")
    uncertainty: float | None = Field(description="Mean normalized entropy on the stop set.")
    paused: bool = Field(description="Whether the queue is paused (pause_when_stable).")


class ClustersState(_Out):
    n_clusters: int | None
    fitted_on: int = Field(description="Pool rows the clustering was made from.")
    fits: int
    fit_s: float


class LeaseCounts(_Out):
    """Lease bookkeeping held: leases, annotators and holders with one, lease ends scheduled."""

    leases: int
    annotators: int
    holders: int
    lease_ends: int


class IngestCounts(_Out):
    """What this process's consumer stored from the stream."""

    samples: int
    labels: int
    dead_letters: int
    batches: int
    held_s: float = Field(description="Time spent waiting for the store to catch up.")


class EngineStats(PoolCounts):
    """``/stats`` of a full service: its pool, labels, model versions and the learning curve."""

    unlabeled: int = Field(description="The pool's size (as pool).")
    labeled: int = Field(description="Labeled samples the engine has followed.")
    skipped: int
    store: StoreCounts = Field(description="The rows the engine has followed (at most a moment behind).")
    conflicts: int = Field(description="Samples whose annotators' latest labels disagree.")
    labels_per_class: dict[str, int] = Field(description="Labeled samples per class: every class named.")
    cold_start: bool = Field(description="No model version serves yet.")
    strategy: str
    model_version: int | None = Field(description="The version that serves.")
    training_version: int | None = Field(description="The version being trained now.")
    last_training_error: str | None
    training_failures: int
    stream_accuracy: float | None = Field(description="Accuracy on the random share's labels (unbiased).")
    stream_accuracy_samples: int
    learning_curve: list[CurvePoint] = Field(description="The newest versions, oldest first.")
    label_to_model_s: Latency | None
    waiting_labels: WaitingLabels
    retention: RetentionState | None = Field(description="None: no retention_s set.")
    drift: DriftState
    selective: SelectiveState | None = Field(description="None: no selector set.")
    stopping: StoppingState
    clusters: ClustersState | None = Field(description="None: the strategy uses no clusters.")
    leased: int = Field(description="Items leased now.")
    leases: LeaseCounts
    ingest: IngestCounts | None = Field(description="None: no consumer in this process.")


class CandidateCounts(_Out):
    candidates: int = Field(description="The shards' candidates in the store.")
    leased: int = Field(description="Of them, leased now.")


class ShardDrift(_Out):
    detected: int
    last: DriftEvent | None = Field(description="The shard's newest drift.")


class ShardStopping(_Out):
    stable: bool
    kappa: float | None
    since_version: int | None


class ShardOut(PoolCounts):
    """What a worker reported of one shard, and the report's age."""

    model_config = ConfigDict(extra="ignore")  # a worker of another release may report more

    model_version: int | None = Field(description="The version the shard scores with.")
    retention: RetentionCounts | None
    drift: ShardDrift
    stopping: ShardStopping
    worker: str
    age_s: float = Field(description="Seconds since the report.")
    stale: bool = Field(description="Not reported for a while: its worker died or lost it.")


class TotalsDrift(_Out):
    detected: int


class TotalsStopping(_Out):
    stable: bool = Field(description="Every shard is stable (and there is one).")


class Totals(PoolCounts):
    """The shards' reports added up."""

    max_pool: int | None = Field(description="The pools' bounds added up (None: one is unbounded).")
    shards: int = Field(description="Shards that reported.")
    model_versions: list[int] = Field(description="The versions the shards score with (two: one arriving).")
    retention: RetentionCounts | None = Field(description="None: no shard has retention.")
    drift: TotalsDrift
    stopping: TotalsStopping


class VersionAccuracy(_Out):
    accuracy: float = Field(description="The version's guesses right, on the random items labeled.")
    samples: int


class ReplicaDrift(DriftState):
    """The drifts the active trainer found in the replicas' random items."""

    boost_until: float | None = Field(description="The random share stays raised until (Unix time).")


class ReplicaStats(_Out):
    """``/stats`` of a stateless replica: the store's counts, the shared queue's, the version that
    serves, the learning curve of the recorded versions, and what the shards report (each with its
    age) with their totals."""

    stateless: Literal[True]
    store: StoreCounts
    queue: CandidateCounts
    model_version: int | None = Field(description="The newest recorded version, as served.")
    strategy: str
    random_share: float
    stream_accuracy: float | None = Field(
        description="Accuracy on the replicas' random items people labeled (unbiased; the trainer scores it)."
    )
    stream_accuracy_samples: int
    stream_accuracy_by_version: dict[str, VersionAccuracy] = Field(
        description="Per model version (the one that guessed): its accuracy on the random items."
    )
    drift: ReplicaDrift
    learning_curve: list[CurvePoint] = Field(
        description="The newest versions the store records, oldest first; drift: the trainer found one."
    )
    shards: dict[str, ShardOut] = Field(description="Each shard's report, by the shard's number.")
    totals: Totals
    stale: list[int] = Field(description="The shards whose reports are stale.")
    ingest: IngestCounts | None = Field(description="None: no consumer in this process.")


def _kind(stats: Any) -> str:
    stateless = stats.get("stateless") if isinstance(stats, Mapping) else isinstance(stats, ReplicaStats)
    return "replica" if stateless else "engine"


Stats = Annotated[
    Annotated[EngineStats, Tag("engine")] | Annotated[ReplicaStats, Tag("replica")], Discriminator(_kind)
]
_STATS: TypeAdapter[Stats] = TypeAdapter(Stats)


def stats_out(stats: Mapping[str, Any], ingest: Mapping[str, Any] | None) -> EngineStats | ReplicaStats:
    """``stats`` (a full service's or a replica's) and this process's ``ingest`` counts, checked."""
    return _STATS.validate_python({**stats, "ingest": ingest})


__all__ = ["EngineStats", "ReplicaStats", "Stats", "stats_out"]
