"""Type stubs of the native module (python/src/*.rs)."""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from os import PathLike
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, final, overload

# A row of features: positional (schema order; a categorical feature by its category string or
# code), by name, or any float64 buffer such as a 1-D NumPy array (read in place).
_Features = Sequence[float | str | None] | Mapping[str, float | str | None] | Any
_Time = str | float | int | datetime

@final
class Agent:
    """The in-process recorder of one model variant: the Rust agent's lock-free hook.

    Snapshots go to the store in ``data`` (default ``./modelwatch-data``; durable once
    ``flush`` returns; with ``objects="s3://bucket/prefix"`` its Parquet files go to that
    bucket, reached through the ``AWS_*`` variables, as the CLI's ``--objects``) or to
    ``sink``, a callable given one dict per interval. ``features``
    declares the schema: a name is a numeric feature, ``(name, [categories])`` a categorical
    one. Odd values at record time (NaN, infinities, a confidence outside [0, 1], a row of
    the wrong length, an undeclared segment) are counted, never raised. After ``os.fork``
    the child rebuilds the agent with its own writer slot.
    """

    def __new__(
        cls,
        model: str,
        *,
        version: str | None = None,
        variant: str | None = None,
        instance: str | None = None,
        segments: Sequence[str] | None = None,
        features: Sequence[str | tuple[str, Sequence[str]]] | None = None,
        error_kinds: Sequence[str] | None = None,
        interval: float = 10.0,
        data: str | PathLike[str] | None = None,
        objects: str | None = None,
        sink: Callable[[dict[str, Any]], object] | None = None,
        memory_budget: int | None = None,
    ) -> Self: ...
    def record(
        self,
        segment: str,
        latency_s: float,
        confidence: float,
        features: _Features | None = None,
        predicted: bool | int | None = None,
    ) -> None:
        """Records one prediction."""
    def timer(self, segment: str) -> Timer:
        """A context manager timing its block; set ``confidence`` on it inside."""
    def feedback(
        self, segment: str, confidence: float, label: bool | int, predicted_at: _Time | None = None
    ) -> None:
        """A label for the prediction made at ``predicted_at`` (default now)."""
    def error(self, segment: str, kind: str | None = None) -> None:
        """Counts a scoring error of a declared kind (others, and None, count as ``other``)."""
    def model_loaded(self) -> None: ...
    def model_unloaded(self) -> None: ...
    def log_metric(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None: ...
    def record_batch(
        self,
        segment: str | Sequence[str],
        latency_s: Any,
        confidence: Any,
        features: Any | None = None,
        predicted: Sequence[bool] | Any | None = None,
    ) -> int:
        """Records a batch (1-D arrays, a 2-D float64 feature array) with the GIL released;
        returns the number of rows."""
    def flush(self) -> None:
        """Delivers everything recorded so far (durable in the store when it returns)."""
    def close(self) -> None:
        """Flushes the last interval and stops the agent; later calls are counted."""
    def stats(self) -> dict[str, int | bool]:
        """Snapshots made and waiting, shards, memory, and the calls counted, not recorded:
        ``after_close``, ``bad_values`` (a feature, tag or metric name that was no value of
        its kind), ``unknown_feature_names`` (dict keys that name no feature)."""
    @property
    def model(self) -> str: ...
    @property
    def features(self) -> list[str]: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

@final
class Timer:
    """``with agent.timer(segment) as t: ...; t.confidence = ...``"""

    confidence: float | None
    features: _Features | None
    predicted: bool | int | None
    @property
    def elapsed(self) -> float: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

@overload
def query(
    expr: str,
    *,
    since: str = "1h",
    step: str = "1m",
    start: _Time | None = None,
    end: _Time | None = None,
    data: str | PathLike[str] | None = None,
    objects: str | None = None,
    format: Literal["records"] = "records",
) -> list[dict[str, Any]]: ...
@overload
def query(
    expr: str,
    *,
    since: str = "1h",
    step: str = "1m",
    start: _Time | None = None,
    end: _Time | None = None,
    data: str | PathLike[str] | None = None,
    objects: str | None = None,
    format: Literal["pandas", "arrow"],
) -> Any: ...
def drift(
    reference: str,
    *,
    since: str = "24h",
    start: _Time | None = None,
    end: _Time | None = None,
    data: str | PathLike[str] | None = None,
    objects: str | None = None,
    filters: Mapping[str, str] | None = None,
) -> dict[str, Any]: ...
def quality(
    *,
    since: str = "7d",
    start: _Time | None = None,
    end: _Time | None = None,
    data: str | PathLike[str] | None = None,
    objects: str | None = None,
    by: Sequence[str] | None = None,
    reference: str | None = None,
    threshold: float = 0.5,
    min_label_age: str = "0s",
    min_bin_labels: int = ...,
    filters: Mapping[str, str] | None = None,
) -> dict[str, Any]: ...
def after_fork_in_child() -> None: ...
def close_deployments() -> None: ...
def close_all_at_exit() -> None: ...
def _bench_rust_record(per_thread: int, threads: int, features: int) -> float: ...

__all__ = [
    "Agent",
    "Deployment",
    "Timer",
    "Variant",
    "_bench_rust_record",
    "after_fork_in_child",
    "close_all_at_exit",
    "close_deployments",
    "drift",
    "quality",
    "query",
]

class _ServingInfo(TypedDict):
    control: int | None
    challenger: int | None
    generation: int | None

class _RefreshInfo(TypedDict):
    seq: int
    control: int | None
    challenger: int | None
    changed: bool
    failed: list[str]
    generation: int | None

@final
class Variant:
    """One (arm, version) serving: its loaded model and its agent."""
    @property
    def arm(self) -> Literal["control", "challenger"]: ...
    @property
    def version(self) -> int: ...
    @property
    def model(self) -> Any: ...
    @property
    def agent(self) -> Agent: ...
    @property
    def info(self) -> dict[str, Any]: ...

@final
class Deployment:
    """A scorer that serves the model the registry's aliases name: the control, and a
    challenger on its sticky share of the keys, each recorded by its own agent."""
    def __new__(
        cls,
        model: str,
        data: str | PathLike[str] | None = None,
        *,
        objects: str | None = None,
        fraction: float = 0.1,
        segments: Sequence[str] | None = None,
        features: Sequence[str | tuple[str, Sequence[str]]] | None = None,
        error_kinds: Sequence[str] | None = None,
        interval: float = 10.0,
        loader: Callable[[dict[str, Any], str], Any] | None = None,
        refresh: float = 5.0,
    ) -> Self: ...
    def variant_for(self, key: str | bytes) -> Variant | None: ...
    def agent(self, variant: Variant | Literal["control", "challenger"]) -> Agent | None: ...
    def on_promote(self, callback: Callable[[_ServingInfo], object]) -> Callable[[_ServingInfo], object]: ...
    def refresh(self) -> _RefreshInfo: ...
    def serving(self) -> _ServingInfo: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    @property
    def model(self) -> str: ...
    def __enter__(self) -> Deployment: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...
