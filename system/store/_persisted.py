"""A value that survives restarts, written to a ``Store`` under a policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

if TYPE_CHECKING:
    from system.store._sqlite import Store

T = TypeVar("T")


@dataclass(frozen=True)
class OnChange:
    """Write on every change: nothing set is ever lost, one write per change."""


@dataclass(frozen=True)
class OnInterval:
    """Write changed values every ``seconds`` (and on a clean stop): cheap for values that
    change often, at the price of losing the last ``seconds`` of changes in a crash."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError(f"OnInterval needs seconds > 0, got {self.seconds}")


PersistPolicy = OnChange | OnInterval


class Persisted(Generic[T]):
    """One value under ``(namespace, key)``. Read and set ``.value``; ``restore()`` loads what
    was stored (falling back to ``default`` when nothing was, or it no longer fits ``type_``)."""

    def __init__(
        self,
        store: Store | None,
        namespace: str,
        key: str,
        default: T,
        policy: PersistPolicy = OnChange(),
        type_: Any = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.key = key
        self.default = default
        self.policy = policy
        self._adapter = TypeAdapter(type_) if type_ is not None else None
        self._value: T = default
        self.dirty = False
        self.writes = 0
        self.found = False  # the last restore() found a stored value

    @property
    def value(self) -> T:
        return self._value

    @value.setter
    def value(self, new: T) -> None:
        self._value = new
        self.dirty = True
        if isinstance(self.policy, OnChange):
            self.flush()

    def restore(self) -> T:
        if self.store is not None:
            raw = self.store.get(self.namespace, self.key, _MISSING)
            self.found = raw is not _MISSING
            if raw is not _MISSING:
                try:
                    self._value = (
                        self._adapter.validate_python(raw) if self._adapter else raw
                    )
                except ValueError:
                    self._value = self.default
        self.dirty = False
        return self._value

    def flush(self) -> None:
        """Write the value now if it changed since the last write."""
        if self.store is None or not self.dirty:
            return
        value: Any = self._value
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        elif self._adapter is not None:
            value = self._adapter.dump_python(value, mode="json")
        self.store.put(self.namespace, self.key, value)
        self.dirty = False
        self.writes += 1


_MISSING: Any = object()
