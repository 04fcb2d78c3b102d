"""A write based on an older version of what it changes: merged field by field, or a conflict.

Pure: the command reads the three versions (the one the form was opened at, the current one and
the one sent) and decides with `merge`; the contact's details and its next-meeting notes use it
alike.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple


class Clash(NamedTuple):
    """A field both writers changed, to different values."""

    theirs: Any  # the current value, written by someone else since the form was opened
    mine: Any  # the value this write sends


class Merged(NamedTuple):
    fields: dict[str, Any]  # the current version with this write's changes; mine where they clash
    clashes: dict[str, Clash]  # by field; empty when the write can be saved as `fields`


def merge(base: Mapping[str, Any], current: Mapping[str, Any], mine: Mapping[str, Any]) -> Merged:
    """Three-way merge of `mine` (the fields a write sends) onto `current`, both descended from
    `base`. A field I did not change keeps the current value; one only I changed (or we both
    changed alike) takes mine; one we changed differently clashes. A field I did not send keeps
    the current value."""
    fields = dict(current)
    clashes = {}
    for name, value in mine.items():
        if value == base.get(name):
            continue  # untouched by me: whatever it is now
        fields[name] = value
        if current.get(name) not in (base.get(name), value):
            clashes[name] = Clash(current.get(name), value)
    return Merged(fields, clashes)
