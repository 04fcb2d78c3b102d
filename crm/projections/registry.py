"""Every projection of the CRM, by name."""

from typing import Any

from crm.projections.accounts import ACCOUNTS
from crm.projections.base import Projection
from crm.projections.contacts import CONTACTS
from crm.projections.interactions import INTERACTIONS
from crm.projections.meeting_notes_emails import MEETING_NOTES_EMAILS

ALL: tuple[Projection[Any], ...] = (ACCOUNTS, CONTACTS, INTERACTIONS, MEETING_NOTES_EMAILS)
BY_NAME: dict[str, Projection[Any]] = {p.name: p for p in ALL}
