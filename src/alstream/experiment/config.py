"""What an experiment runs: one object, readable by the CLI, the flow and MLflow; ``StreamConfig`` for
the stream protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar, cast

from alstream.errors import ConfigError
from alstream.experiment.datasets import check_source
from alstream.learning.estimators import MODELS, make_model, model_name, supports_partial_fit
from alstream.learning.querying import query_strategy_name
from alstream.learning.selective import SELECTORS, BudgetManager, selector_name
from alstream.names import registered

BASELINE = "random"
INITIAL_SETS = ("stratified", "typical")  # how the initial labeled set is drawn
PREFIX = "skactiveml:"  # scikit-activeml's run of a selective strategy, beside alstream's


T = TypeVar("T")


class _Normalised(Generic[T]):
    """A frozen dataclass's field, kept as ``normalise(value)`` when it is given; read as
    ``otherwise(instance)`` while it is empty."""

    def __init__(
        self, default: T, normalise: Callable[[T], T] | None, otherwise: Callable[[Any], T] | None
    ) -> None:
        self.default, self.normalise, self.otherwise = default, normalise, otherwise

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, instance: object | None, owner: type | None = None) -> T:
        if instance is None:  # the class's: the dataclass's default
            return self.default
        value: T = vars(instance)[self.slot]
        return self.otherwise(instance) if self.otherwise is not None and not value else value

    def __set__(self, instance: object, value: T) -> None:  # the dataclass's __init__ only
        vars(instance)[self.slot] = value if self.normalise is None else self.normalise(value)


def normalised(
    default: T, normalise: Callable[[T], T] | None = None, *, otherwise: Callable[[Any], T] | None = None
) -> T:
    """A field's default (as ``dataclasses.field``) that keeps what is given as ``normalise(value)``
    (a converter), and reads an empty value as ``otherwise(config)`` (a default made of other fields)."""
    return cast(T, _Normalised(default, normalise, otherwise))


@dataclass(frozen=True)
class Knobs:
    """What both protocols share: the data, the seeds, the run's name and free-form extras."""

    dataset: str = "digits"
    label_column: str = "label"
    n_samples: int = 10_000
    n_features: int = 20
    n_classes: int = 2
    drifts: int = 1
    seeds: int = 5
    name: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    strategies: tuple[str, ...] = ()

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def params(self) -> dict[str, object]:
        """Flat parameters, as MLflow and reports show them."""
        params = asdict(self)
        params["strategies"] = ",".join(self.strategies)
        params.update(params.pop("extra"))
        return params


@dataclass(frozen=True)
class ExperimentConfig(Knobs):
    """The protocol's knobs. ``strategies`` are compared with each other on the same splits;
    ``initial_set``: the initial labeled set drawn ``stratified`` (by class, at random) or ``typical``
    (TypiClust's most typical points, without labels). ``batch_size``: labels per round, or a share
    of the pool (0 < x < 1). Names are kept as registered, a whole ``batch_size`` as an int; a
    knob that cannot be used raises :class:`~alstream.errors.ConfigError`, an unknown name
    :class:`~alstream.errors.InvalidInput`.

    >>> ExperimentConfig(strategies=("margin", "least-confident", "Cluster-Margin")).strategies
    ('margin', 'least_confident', 'cluster_margin')
    >>> ExperimentConfig(dataset="iris", batch_size=5.0).batch_size, ExperimentConfig(dataset="iris").name
    (5, 'iris-logreg')
    """

    dataset: str = "digits"
    strategies: tuple[str, ...] = normalised(
        ("entropy", BASELINE), lambda given: _names(given, query_strategy_name)
    )
    model: str = "logreg"
    initial_fraction: float = 0.1
    initial_set: str = normalised("stratified", lambda given: registered(given, INITIAL_SETS, "initial set"))
    batch_size: int | float = normalised(
        20, lambda size: int(size) if size >= 1 and float(size).is_integer() else size
    )
    iterations: int = 20
    seeds: int = 5
    test_size: float = 0.25
    standardize: bool = True
    online: bool = False
    refit_every: int = 0
    name: str = normalised("", otherwise=lambda config: f"{_stem(config.dataset)}-{config.model}")

    def __post_init__(self) -> None:
        check_source(self.dataset)
        if not self.strategies:
            raise ConfigError("choose at least one strategy")
        model_name(self.model)  # a clear error for unknown names
        if self.online and not supports_partial_fit(make_model(self.model)):
            online = [name for name in MODELS if supports_partial_fit(make_model(name))]
            raise ConfigError(
                f"model {self.model!r} has no partial_fit, so it cannot learn online: "
                f"use {' or '.join(online)} for online updates, or refit (no --online)"
            )
        if self.refit_every and not self.online:
            raise ConfigError("refit_every applies to online updates only: add --online")
        if not 0 < self.initial_fraction < 1:
            raise ConfigError(f"initial_fraction must be in (0, 1), got {self.initial_fraction}")
        if not 0 < self.test_size < 1:
            raise ConfigError(f"test_size must be in (0, 1), got {self.test_size}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {self.seeds}")
        size = self.batch_size
        if not (0 < size < 1 or (size >= 1 and float(size).is_integer())):
            raise ConfigError(f"batch_size must be a count or a share of the pool (0 < x < 1), got {size}")
        if self.iterations < 0:
            raise ConfigError(f"iterations must be >= 0, got {self.iterations}")


@dataclass(frozen=True)
class StreamConfig(Knobs):
    """The stream protocol's knobs; errors as :class:`ExperimentConfig`'s.

    >>> StreamConfig(strategies=("Split", "random"), skactiveml=False).runs
    ('split', 'random')
    """

    dataset: str = "drift"
    strategies: tuple[str, ...] = normalised(tuple(SELECTORS), lambda given: _names(given, selector_name))
    model: str = "sgd"
    budget: float = 0.1
    window: int | None = None
    initial: int = 20
    update_every: int = 10
    points: int = 40
    seeds: int = 3
    standardize: bool = True
    skactiveml: bool = True
    name: str = normalised("", otherwise=lambda config: f"{_stem(config.dataset)}-stream-{config.model}")

    def __post_init__(self) -> None:
        check_source(self.dataset)
        if not self.strategies:
            raise ConfigError("choose at least one strategy")
        if not supports_partial_fit(make_model(self.model)):
            raise ConfigError(
                f"model {self.model!r} has no partial_fit, so it cannot learn from a stream: use sgd"
            )
        try:
            BudgetManager(self.budget, self.window).check()
        except ValueError as error:
            raise ConfigError(str(error)) from None
        for knob in ("initial", "update_every", "points", "seeds"):
            if getattr(self, knob) < 1:
                raise ConfigError(f"{knob} must be at least 1, got {getattr(self, knob)}")

    @property
    def runs(self) -> tuple[str, ...]:
        """Every curve: alstream's strategies, then scikit-activeml's (``skactiveml:<name>``)."""
        theirs = tuple(f"{PREFIX}{s}" for s in self.strategies) if self.skactiveml else ()
        return self.strategies + theirs


def _stem(dataset: str) -> str:
    return dataset.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]


def _names(given: tuple[str, ...], name: Callable[[str], str]) -> tuple[str, ...]:
    """The registered names of ``given``, each once, in order."""
    return tuple(dict.fromkeys(name(s) for s in given))
