"""projected_accounts: one row per account, read by log-in and the e-mail job."""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Projection, Row
from crm.store.events import Event


class Account(NamedTuple):
    account_id: str
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


def _to_rows(state: Account) -> list[Row]:
    return [tuple(state)[1:]]


def _from_rows(account_id: str, rows: list[Row]) -> Account:
    return Account(account_id, *rows[0])


ACCOUNTS: Projection[Account] = Projection(
    name="accounts",
    table="projected_accounts",
    key_column="account_id",
    columns=("email", "password_hash", "time_zone", "created_at", "last_updated_at"),
    handlers={"account-created": created},
    to_rows=_to_rows,
    from_rows=_from_rows,
    describes="the account",
)
