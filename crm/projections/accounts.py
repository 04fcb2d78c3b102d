"""projected_accounts: one row per account, read by log-in, the account page and the e-mail
job."""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Index, Projection, Uuid
from crm.store.events import Event


class Account(NamedTuple):
    account_id: Uuid
    email: str
    password_hash: str
    time_zone: str
    created_at: datetime
    last_updated_at: datetime


def created(state: Account | None, event: Event) -> Account:
    p = event.payload
    return Account(
        p["account_id"],
        p["email"],
        p["password_hash"],
        p["time_zone"],
        event.created_at,
        event.created_at,
    )


def password_changed(state: Account | None, event: Event) -> Account | None:
    if state is None:
        return None
    return state._replace(
        password_hash=event.payload["password_hash"], last_updated_at=event.created_at
    )


def time_zone_changed(state: Account | None, event: Event) -> Account | None:
    if state is None:
        return None
    return state._replace(time_zone=event.payload["time_zone"], last_updated_at=event.created_at)


ACCOUNTS: Projection[Account] = Projection(
    name="accounts",
    table="projected_accounts",
    row=Account,
    handlers={
        "account-created": created,
        "account-password-changed": password_changed,
        "account-time-zone-changed": time_zone_changed,
    },
    # not unique: the write side decides (entities); a read model enforcing it could only refuse
    # an event already accepted (docs/architecture.md, "Projections")
    indexes=(Index("email", ("email",)),),
    describes="the account",
)
