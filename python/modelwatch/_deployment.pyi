# The Deployment part of the stubs of modelwatch._modelwatch (to be merged into
# _modelwatch.pyi, beside Agent's; `Agent` below is that module's class).
from os import PathLike
from types import TracebackType
from typing import Any, Callable, Literal, Sequence, TypedDict

from ._modelwatch import Agent

class ServingInfo(TypedDict):
    control: int | None
    challenger: int | None
    generation: int | None

class RefreshInfo(TypedDict):
    seq: int
    control: int | None
    challenger: int | None
    changed: bool
    failed: list[str]
    generation: int | None

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

class Deployment:
    """A scorer that serves the model the registry's aliases name: the control, and a
    challenger on its sticky share of the keys, each recorded by its own agent."""
    def __init__(
        self,
        model: str,
        data: str | PathLike[str] | None = None,
        *,
        fraction: float = 0.1,
        segments: Sequence[str] | None = None,
        features: Sequence[str | tuple[str, Sequence[str]]] | None = None,
        error_kinds: Sequence[str] | None = None,
        interval: float = 10.0,
        loader: Callable[[dict[str, Any], str], Any] | None = None,
        refresh: float = 5.0,
    ) -> None: ...
    def variant_for(self, key: str | bytes) -> Variant | None: ...
    def agent(self, variant: Variant | Literal["control", "challenger"]) -> Agent | None: ...
    def on_promote(self, callback: Callable[[ServingInfo], object]) -> Callable[[ServingInfo], object]: ...
    def refresh(self) -> RefreshInfo: ...
    def serving(self) -> ServingInfo: ...
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
