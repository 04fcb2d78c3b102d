"""projected_interactions: a contact's interactions, one row per contact and day."""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Projection, Row
from crm.store.events import Event


class Interaction(NamedTuple):
    account_id: str
    notes: str
    recorded_at: datetime


# A contact's interactions by day (ISO date).
Interactions = dict[str, Interaction]


def recorded(state: Interactions | None, event: Event) -> Interactions:
    p = event.payload
    # the key is contact + day: a second record for the same day replaces that day's notes
    return {
        **(state or {}),
        p["interacted_on"]: Interaction(p["account_id"], p["notes"], event.created_at),
    }


def contact_deleted(state: Interactions | None, event: Event) -> None:
    return None


def _to_rows(state: Interactions) -> list[Row]:
    return [(day, i.account_id, i.notes, i.recorded_at) for day, i in state.items()]


def _from_rows(contact_id: str, rows: list[Row]) -> Interactions:
    return {day: Interaction(account_id, notes, at) for day, account_id, notes, at in rows}


INTERACTIONS: Projection[Interactions] = Projection(
    name="interactions",
    table="projected_interactions",
    key_column="contact_id",
    columns=("interacted_on", "account_id", "notes", "recorded_at"),
    handlers={"interaction-recorded": recorded, "contact-deleted": contact_deleted},
    to_rows=_to_rows,
    from_rows=_from_rows,
    describes="its interactions",
)
