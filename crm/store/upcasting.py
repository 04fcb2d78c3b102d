"""Upcasting: a stored event of an older schema version becomes the current version before any
handler sees it.

A step is a small pure function from a payload of version n to one of version n + 1, declared in
crm/store/upcasters.py beside nothing else; a stored event of version n goes through every step
up to its type's latest version, so handlers know only the latest. Appends always write the
latest. Every version below the latest must have its step: `missing()` lists the ones that do
not, and reading events refuses to start without them (UpcasterMissing names what to add).
"""

from collections.abc import Callable, Mapping
from typing import Any

from crm.store.event_types import EventTypes

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]
# (event type, version n) -> the step from n to n + 1
Upcasters = Mapping[tuple[str, int], Upcaster]


class UpcasterMissing(LookupError):
    """A stored version has no way to the latest."""


def missing(types: EventTypes, upcasters: Upcasters) -> list[str]:
    """What is missing for every stored version to reach its type's latest, in words."""
    return [
        f"{name} v{version} -> v{version + 1} has no upcaster: add one to crm/store/upcasters.py"
        f" (a pure function from a v{version} payload to a v{version + 1} payload)"
        for name, version in sorted(types.by_key)
        if version < types.latest_version(name) and (name, version) not in upcasters
    ]


def to_latest(types: EventTypes, name: str, version: int, upcasters: Upcasters) -> Upcaster | None:
    """The function taking a payload of this version to the latest; None when it is the latest."""
    steps: list[Upcaster] = []
    for step_from in range(version, types.latest_version(name)):
        step = upcasters.get((name, step_from))
        if step is None:
            raise UpcasterMissing(missing(types, upcasters)[0])
        steps.append(step)
    if not steps:
        return None

    def lift(payload: Payload) -> Payload:
        for step in steps:
            payload = step(payload)
        return payload

    return lift
