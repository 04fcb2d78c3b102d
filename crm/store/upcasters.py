"""Every upcaster: for an event type's version n below its latest, the pure function that turns
a payload of version n into one of version n + 1 (crm/store/upcasting.py applies them).

To evolve an event type: `python -m crm.scaffold version TYPE` writes schemas/<type>.v<n+1>.json
(a copy of v<n> to change; a stored version's meaning never changes: schemas/meanings.lock) and
the step below, which starts as a copy; tests/test_upcasting.py fails until every example of every
version lifts to a valid payload of the latest.
"""

from collections.abc import Callable

from crm.store.upcasting import Payload, Upcaster

UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def step(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the decorated function as the step from `from_version` to the next."""

    def register(upcaster: Upcaster) -> Upcaster:
        UPCASTERS[(event_type, from_version)] = upcaster
        return upcaster

    return register


__all__ = ["UPCASTERS", "Payload", "step"]
