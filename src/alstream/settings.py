"""Service settings: one object, read from defaults, a TOML project file and ``ALSTREAM_*`` variables.

Precedence, strongest first: arguments given to ``Settings(...)``, environment variables
(``ALSTREAM_PORT=9000``; nested fields with ``__``: ``ALSTREAM_PROJECT__MAX_BATCH=500``; a
whole nested object as JSON: ``ALSTREAM_PROJECT='{"classes": ["a", "b"], "n_features": 3}'``),
the project file, then the defaults.

The project file is TOML with the same field names at the top level (``[project]`` for the
data contract). It is ``Settings.load(path)``'s path, else ``$ALSTREAM_PROJECT_FILE``, else
``alstream.toml`` in the working directory when it exists. A named file that does not exist is
an error; unknown keys are errors too (typos are caught). A ``[project]`` table replaces the
default (digits) project as a whole when it names its ``classes``; without ``classes`` it only
adjusts the default project (``ALSTREAM_PROJECT__MAX_BATCH=500`` alone keeps the digits demo).

>>> Settings(port=9000, demo=False).port
9000
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alstream.errors import ConfigError
from alstream.learning.selective import selector_name
from alstream.messages import ProjectSchema
from alstream.names import registered

__all__ = ["DEFAULT_PROJECT_FILE", "PROJECT_FILE_ENV", "Settings", "SettingsError"]

DEFAULT_PROJECT_FILE = "alstream.toml"
PROJECT_FILE_ENV = "ALSTREAM_PROJECT_FILE"
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_ORIGIN = re.compile(
    rf"^(?P<scheme>https?)://(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?/?$",
    re.IGNORECASE,
)


SettingsError = ConfigError
"""Settings that cannot be used (:class:`alstream.errors.ConfigError`, by the name its callers know)."""


class _ProjectFileSource(PydanticBaseSettingsSource):
    """The TOML project file (pydantic-settings' TOML source), below the environment, above the defaults.

    Its path comes from the sources above it, so the file is read when called, not when built.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        raise NotImplementedError  # __call__ reads the whole file at once

    def path(self) -> tuple[Path | None, bool]:
        """(the file to read, whether it was asked for by name)."""
        named = self.current_state.get("project_file")
        if named not in (None, ""):
            return Path(named), True
        default = Path.cwd() / DEFAULT_PROJECT_FILE
        return (default, False) if default.is_file() else (None, False)

    def __call__(self) -> dict[str, Any]:
        path, named = self.path()
        if path is None:
            return {}
        if not path.is_file():
            raise SettingsError(f"project file {str(path)!r} not found")
        try:
            data = TomlConfigSettingsSource(self.settings_cls, toml_file=path)()
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"project file {str(path)!r} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise SettingsError(f"project file {str(path)!r} cannot be read: {exc}") from None
        data.pop("project_file", None)  # the file cannot name another file
        if not named:
            data["project_file"] = str(path)
        return data


class Settings(BaseSettings):
    """Everything the service needs to run. See the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix="ALSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    project_file: Path | None = Field(
        None, description="The TOML project file these settings were read from (None: no file)."
    )

    # where things live
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...); None: the embedded log under data_dir."
    )
    database_url: str = Field(
        "sqlite:///.alstream/alstream.db", description="SQLAlchemy URL of the store (sqlite or postgresql)."
    )
    data_dir: Path = Field(Path(".alstream"), description="Folder of the embedded log and the saved models.")
    samples_topic: str = Field("alstream.samples", description="Topic of incoming samples.")
    labels_topic: str = Field("alstream.labels", description="Topic of incoming labels.")
    dead_letter_topic: str = Field(
        "alstream.dead-letter", description="Topic where malformed messages go, with the reason."
    )
    consumer_group: str = Field("alstream", description="Kafka consumer group of the service.")
    log_segment_bytes: int = Field(
        64 * 1024 * 1024,
        ge=4096,
        description="Embedded log (no kafka_bootstrap): a topic's newest segment file is closed and a new "
        "one begun once it holds this many bytes.",
    )
    log_retention_s: float | None = Field(
        60.0,
        ge=0,
        allow_inf_nan=False,
        description="Embedded log: a closed segment is deleted once every consumer group that committed in "
        "its topic has committed past it and its last write is this old (seconds; the store has every record "
        "by then, so this is only a window to replay them: at 10,000 samples/s a minute is about 240 MB). "
        "'forever': keep them.",
    )
    log_retention_bytes: int | None = Field(
        None,
        ge=4096,
        description="Embedded log: while a topic is larger than this (bytes), its oldest closed segments are "
        "deleted even if not consumed yet (a warning counts the records dropped), like Kafka's "
        "retention.bytes. None: no size bound.",
    )
    consumer_instance_id: str | None = Field(
        None,
        description="Kafka static membership: consumers are group members '<this>-<n>' (n: the lowest "
        "slot free under data_dir), so a restarted one resumes at once; None: the host name. Hosts that "
        "share a host name need their own.",
    )

    # HTTP
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP API listens on.")
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest HTTP request body accepted, in bytes (the bodies held at once, all requests "
        "together, are at most 8 times this: past it, 503).",
    )
    max_predict_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest /predict body accepted, in bytes."
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="A request body must arrive whole within this long, seconds (else 408).",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="A request's headers must arrive whole within this long, seconds (else the "
        "connection is closed).",
    )
    max_connections: int = Field(
        1000, ge=1, description="Open connections at most; past it, new ones are answered 503 at once."
    )
    max_message_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest stream message, in bytes: /send refuses a larger one (422), the consumer "
        "dead-letters one from another client.",
    )
    publish_timeout_s: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="How long /send and /labels wait for the stream to take a batch before answering 503, "
        "seconds.",
    )

    # access
    admin_token: SecretStr | None = Field(
        None,
        min_length=16,
        description="An admin token to accept besides the stored ones (e.g. from a secret store). When "
        "it is unset and the store has no token, the first start makes an admin token and prints it once.",
    )
    send_rate_per_s: float = Field(
        50.0, gt=0, allow_inf_nan=False, description="Requests per second each token may make to /send."
    )
    send_burst: int = Field(
        100, ge=1, description="Requests to /send a token may make at once, above the rate."
    )
    queue_rate_per_s: float = Field(
        10.0, gt=0, allow_inf_nan=False, description="Requests per second each token may make to /queue."
    )
    queue_burst: int = Field(
        30, ge=1, description="Requests to /queue a token may make at once, above the rate."
    )
    labels_rate_per_s: float = Field(
        50.0, gt=0, allow_inf_nan=False, description="Requests per second each token may make to /labels."
    )
    labels_burst: int = Field(
        100, ge=1, description="Requests to /labels a token may make at once, above the rate."
    )
    max_leases_per_annotator: int = Field(
        100, ge=1, description="Most queue items leased to one annotator at once (the page holds 7)."
    )
    max_leases_per_token: int = Field(
        200,
        ge=1,
        description="Most queue items leased through one producer or annotator token at once, "
        "whatever the names (admin tokens: only the per-annotator cap).",
    )
    max_waiting_labels: int = Field(
        100_000,
        ge=1,
        description="Labels kept in memory for samples that have not arrived yet (the newest; "
        "older ones stay in the store, counted in /stats as dropped).",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins allowed to call the API from a browser (CORS); empty: none (same origin).",
    )
    image_origins: list[str] = Field(
        default_factory=list,
        description="Origins the labeling page may show `meta.image` URLs from, such as "
        "'https://cdn.example.org' (the service's own and data: images always show); empty: none.",
    )

    # the data and the learning
    project: ProjectSchema = Field(
        default_factory=ProjectSchema.digits,
        description="The data contract: classes and sample shape (default: the digits demo).",
    )
    text_features: int = Field(
        2**10,
        ge=16,
        le=2**16,
        description="Columns each text is hashed into (word unigrams and bigrams), for data = 'text'.",
    )
    strategy: str = Field(
        "margin",
        description="Query strategy: margin, entropy, least_confident (or least-confident), random, or "
        "cluster_margin (by margin, what people lease between two model versions spread over clusters of "
        "the pool).",
    )
    model: str = Field("sgd", description="Classifier: one of alstream.learning.estimators.MODELS.")
    keep_model_files: int = Field(
        20, ge=1, description="Model versions kept as files under data_dir/models (the newest; for restarts)."
    )
    retrain_after_labels: int = Field(20, ge=1, description="Retrain after this many new labels.")
    retrain_interval_s: float = Field(
        30.0, gt=0, allow_inf_nan=False, description="Retrain at least this often when labels wait, seconds."
    )
    online_updates: bool = Field(True, description="Update the model online (partial_fit) between refits.")
    full_retrain_every: int = Field(
        5, ge=1, description="Refit from scratch every N model versions when updating online."
    )
    candidates_per_shard: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="`alstream worker`: the best samples each shard publishes to the shared queue (a few "
        "times what annotators lease between two model versions).",
    )
    trainer_poll_s: float = Field(
        2.0,
        gt=0,
        allow_inf_nan=False,
        description="`alstream trainer`: how often a standby asks for the trainer lock, and the active one "
        "checks it still holds it, seconds.",
    )
    random_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of queue items drawn at random, for an unbiased accuracy estimate (0..1).",
    )
    lease_s: float = Field(
        300.0, gt=0, allow_inf_nan=False, description="How long a served query item is reserved, seconds."
    )
    max_pool: int | None = Field(
        None,
        ge=10,
        description="Most unlabeled samples held in memory to ask about; an arrival then competes for a "
        "place (the least informative leaves). Default: what fits in max_pool_mb.",
    )
    max_pool_mb: float = Field(
        1024.0,
        gt=0,
        allow_inf_nan=False,
        description="Memory budget of the pool, MiB (unless max_pool is set).",
    )
    reservoir_share: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the pool kept as a uniform sample of the stream (the random queue items come "
        "from it).",
    )
    max_age_s: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Unlabeled samples older than this leave the pool (s)."
    )
    retention_s: float | None = Field(
        7 * 24 * 3600.0,
        gt=0,
        allow_inf_nan=False,
        description="Unlabeled samples are deleted from the store this long after they arrived, once out of "
        "the pool (seconds; labeled samples and labels are kept forever). 'forever': keep every sample.",
    )
    retention_max_overdue: int = Field(
        100_000,
        ge=1,
        description="Samples past retention_s that retention has not deleted yet, at most: beyond, the "
        "consumer waits (the stream keeps what comes meanwhile) until deleting catches up, so the store "
        "stays bounded when samples come faster than it can delete them.",
    )
    selector: str | None = Field(
        None,
        description="A selective strategy that decides, per arrival, whether it may enter the queue within "
        "label_budget: variable_uncertainty, randomized_variable_uncertainty, split, fixed_uncertainty or "
        "random (the others only feed the reservoir). None: every arrival competes by its score.",
    )
    label_budget: float | Literal["auto"] = Field(
        "auto",
        description="Labels an hour people give, for the selector: a number > 0, or 'auto' (measured from "
        "the labels of the last 15 minutes).",
    )
    drift_reaction: bool = Field(
        True,
        description="On a drift (river's ADWIN on the audit accuracy and the arrivals' scores): retrain at "
        "once with older labels weighing drift_old_weight, and raise the random share for drift_boost_s.",
    )
    drift_delta: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="ADWIN's delta on the audit stream: smaller, fewer false alarms, slower.",
    )
    drift_boost_s: float = Field(
        600.0,
        ge=0,
        allow_inf_nan=False,
        description="How long the random share stays raised after a drift (s).",
    )
    drift_random_share: float = Field(
        0.3, ge=0.0, le=1.0, description="The random share of the queue for drift_boost_s after a drift."
    )
    drift_old_weight: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="After a drift, the weight of the labels given before it in retrains.",
    )
    pause_when_stable: bool = Field(
        False,
        description="Pause the queue once the model has stabilised (stabilizing predictions: mean Cohen's "
        "kappa of the last 3 pairs of full versions, retrain_after_labels apart, on a fixed stop set, at "
        "least 0.99; /stats shows it under 'stopping'): /queue then answers an empty list with the reason "
        "in its Alstream-Queue-Paused header, and the page says so. It serves again after a drift.",
    )
    min_labels_per_class: int = Field(
        2, ge=1, description="Below this many labels in some class: cold start, the queue is random."
    )
    seed: int = Field(0, description="Seed of every random choice (random share, cold start, models).")
    demo: bool = Field(True, description="Seed the digits demo when the store is empty.")

    # records: off the path of every model version
    mlflow: bool = Field(
        True,
        description="Log each model version to MLflow, in the background (MLFLOW_TRACKING_URI, else "
        "mlflow.db in the working directory).",
    )
    orchestrator: Literal["prefect", "none"] = Field(
        "prefect",
        description="Where `alstream serve` records each full retrain once it serves: 'prefect' (a run of "
        "the flow 'retrain'; PREFECT_API_URL, else Prefect's temporary server) or 'none'.",
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ProjectFileSource(settings_cls)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``path`` (or the usual file), the environment and ``overrides``.

        Raises :class:`SettingsError` with one line per bad field, naming the file.
        """
        if path is not None:
            overrides["project_file"] = Path(path)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            where = path if path is not None else os.environ.get(PROJECT_FILE_ENV)
            raise SettingsError(_explain(exc, where)) from None

    # ------------------------------------------------------------------------ checks

    @field_validator("project", mode="before")
    @classmethod
    def _project_over_digits(cls, value: Any) -> Any:
        # A project table without `classes` adjusts the default (digits) project, e.g. only
        # ALSTREAM_PROJECT__MAX_BATCH=500; one that names its classes replaces it as a whole.
        if isinstance(value, dict) and "classes" not in value:
            return {**ProjectSchema.digits().model_dump(exclude_unset=True), **value}
        return value

    @field_validator("kafka_bootstrap", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(f"expected a URL such as sqlite:///path.db or postgresql://..., got {value!r}")
        return value

    @field_validator("samples_topic", "labels_topic", "dead_letter_topic")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        if not _TOPIC.match(value) or value in {".", ".."}:
            raise ValueError(
                f"invalid Kafka topic name {value!r}: 1-249 characters of letters, digits, '.', '_', '-'"
            )
        return value

    @field_validator("image_origins")
    @classmethod
    def _check_origins(cls, values: list[str]) -> list[str]:
        return [_origin(value) for value in values]

    @field_validator("consumer_group", "host")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("strategy")
    @classmethod
    def _check_strategy(cls, value: str) -> str:
        from alstream.learning.strategies import STRATEGIES

        return registered(value, [*sorted(STRATEGIES), "cluster_margin"], "strategy")

    @field_validator("retention_s", "log_retention_s", "log_retention_bytes", mode="before")
    @classmethod
    def _forever_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null", "forever"):
            return None
        return value

    @field_validator("selector")
    @classmethod
    def _check_selector(cls, value: str | None) -> str | None:
        return None if value is None else selector_name(value)

    @field_validator("label_budget")
    @classmethod
    def _check_budget(cls, value: float | str) -> float | str:
        if value != "auto" and not (isinstance(value, int | float) and 0 < value < float("inf")):
            raise ValueError(f"label_budget is a number of labels an hour above 0, or 'auto', not {value!r}")
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        from alstream.learning.estimators import (
            model_name,  # imports scikit-learn: only when settings are built
        )

        return model_name(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        key = value.strip().upper()
        if key not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}: choose DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return key

    @model_validator(mode="after")
    def _check_together(self) -> Settings:
        topics = [self.samples_topic, self.labels_topic, self.dead_letter_topic]
        if len(set(topics)) != len(topics):
            raise ValueError(
                f"samples_topic, labels_topic and dead_letter_topic must differ, got {', '.join(topics)}"
            )
        if self.demo and not _fits_digits(self.project):
            raise ValueError(
                "demo = true seeds the digits demo, which needs the default digits project; "
                "set demo = false (ALSTREAM_DEMO=false) for your own project"
            )
        return self


_RENAMED = {  # switches of an older alstream, never settings, that a project file might try
    "track": "unknown setting: MLflow and the orchestrator are two settings, mlflow = true/false and "
    "orchestrator = 'prefect'/'none'",
}


def _origin(value: str) -> str:
    """``value`` as a web origin (scheme://host[:port], lower case), or ValueError saying why not."""
    match = _ORIGIN.match(value.strip())
    if not match or int(match["port"] or 1) > 65535:
        raise ValueError(
            f"{value!r} is not an origin: expected http(s)://host[:port] with no path, "
            "such as 'https://cdn.example.org'"
        )
    scheme, host, port = match["scheme"].lower(), match["host"].lower(), match["port"]
    default = {"http": "80", "https": "443"}[scheme]
    return f"{scheme}://{host}" + (f":{int(port)}" if port and int(port) != int(default) else "")


def _fits_digits(project: ProjectSchema) -> bool:
    digits = ProjectSchema.digits()
    return (
        project.data == "features"
        and project.classes == digits.classes
        and project.n_features == digits.n_features
        and project.feature_names in (None, digits.feature_names)
    )


def _explain(exc: ValidationError, where: Any) -> str:
    lines = [f"invalid settings{f' (project file {str(where)!r})' if where else ''}:"]
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = _RENAMED.get(field, "unknown setting")
        if (
            error["loc"]
            and "input" in error
            and error["type"] not in {"missing", "extra_forbidden", "value_error"}
        ):
            message += f" (got {_short(error['input'])})"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
