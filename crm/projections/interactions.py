"""projected_interactions: a contact's interactions, one row per contact and day."""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Day, Index, Projection, Uuid
from crm.store.events import Event


class Interaction(NamedTuple):
    contact_id: Uuid
    interacted_on: Day
    account_id: Uuid
    notes: str
    recorded_at: datetime


# A contact's interactions by day (ISO date).
Interactions = dict[str, Interaction]


def recorded(state: Interactions | None, event: Event) -> Interactions:
    p = event.payload
    # the key is contact + day: a second record for the same day replaces that day's notes
    day = Interaction(
        p["contact_id"], p["interacted_on"], p["account_id"], p["notes"], event.created_at
    )
    return {**(state or {}), day.interacted_on: day}


def contact_deleted(state: Interactions | None, event: Event) -> None:
    return None


INTERACTIONS: Projection[Interactions] = Projection(
    name="interactions",
    table="projected_interactions",
    row=Interaction,
    row_key="interacted_on",
    handlers={"interaction-recorded": recorded, "contact-deleted": contact_deleted},
    indexes=(Index("account_date", ("account_id", "interacted_on")),),
    describes="its interactions",
)
