"""A state machine helper for devices with modes: the transitions are data, no I/O inside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class InvalidTransition(ValueError):
    """The event is not allowed in the current state."""


class StateMachine:
    """States and ``{(state, event): next_state}`` transitions; ``fire(event)`` moves.

    Pure: it neither publishes nor persists. A device's ``state_machine(...)`` wraps one to
    publish, persist and report each move.
    """

    def __init__(
        self,
        initial: str,
        transitions: Mapping[tuple[str, str], str],
        *,
        states: Iterable[str] = (),
    ) -> None:
        self.transitions = dict(transitions)
        self.states = frozenset(
            {
                *states,
                initial,
                *(s for s, _ in self.transitions),
                *self.transitions.values(),
            }
        )
        self.state = initial

    def can(self, event: str) -> bool:
        return (self.state, event) in self.transitions

    def events(self) -> list[str]:
        """The events allowed in the current state."""
        return sorted(e for s, e in self.transitions if s == self.state)

    def fire(self, event: str) -> tuple[str, str]:
        """Apply ``event``; returns ``(old, new)``. Raises ``InvalidTransition`` naming what is allowed."""
        try:
            new = self.transitions[(self.state, event)]
        except KeyError:
            allowed = ", ".join(self.events()) or "none"
            raise InvalidTransition(
                f"event {event!r} is not allowed in state {self.state!r} (allowed: {allowed})"
            ) from None
        old, self.state = self.state, new
        return old, new

    def force(self, state: str) -> None:
        """Set the state directly (restoring it after a restart)."""
        if state not in self.states:
            raise InvalidTransition(
                f"unknown state {state!r}; known: {', '.join(sorted(self.states))}"
            )
        self.state = state
