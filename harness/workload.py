"""Realistic, valid event streams for tests, benchmarks and demos.

A Workload remembers which contacts exist, so every event it produces is one the commands could
have appended: edits and interactions only for live contacts, names unique within an account.
"""

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

_NOTES = [
    "Ask about the **new job**.",
    "- bring the contract\n- ask about *Lisbon*\n- [agenda](https://example.com/agenda)",
    "Follow up on last week's call; she wanted `numbers` by Friday.",
    "Birthday next month. <script>alert('x')</script> Gift idea: a book.",
    "# Topics\n\n1. budget\n2. hiring\n3. the offsite",
]
_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Donald", "Frances", "Niklaus"]


@dataclass
class Workload:
    account_ids: list[str]
    seed: int = 0
    rng: random.Random = field(init=False)
    contacts: dict[str, list[str]] = field(init=False)  # account -> live contact ids
    pending: dict[str, str] = field(init=False)  # contact -> meeting day with notes unsent
    serial: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.contacts = {account: [] for account in self.account_ids}
        self.pending = {}

    def _name(self) -> str:
        self.serial += 1
        return f"{self.rng.choice(_FIRST)} {self.serial}"

    def _day(self) -> str:
        return (date(2026, 1, 1) + timedelta(days=self.rng.randrange(365))).isoformat()

    def next(self) -> tuple[str, str, dict[str, Any]]:
        """The next (event type, account id, payload)."""
        account = self.rng.choice(self.account_ids)
        live = self.contacts[account]
        roll = self.rng.random()
        if not live or roll < 0.22:
            return self._created(account)
        contact = self.rng.choice(live)
        base = {"contact_id": contact, "account_id": account}
        if roll < 0.30:
            return "contact-edited", account, {**base, **self._details()}
        if roll < 0.33:
            live.remove(contact)
            self.pending.pop(contact, None)
            return "contact-deleted", account, base
        if roll < 0.75:
            notes = self.rng.choice(_NOTES)
            return (
                "interaction-recorded",
                account,
                {**base, "interacted_on": self._day(), "notes": notes},
            )
        if roll < 0.97 or contact not in self.pending:
            day = self._day()
            self.pending[contact] = day
            notes = f"{self.rng.choice(_NOTES)}\n\nRef {self.rng.randrange(50)}"
            return (
                "next-meeting-notes-written",
                account,
                {**base, "meeting_on": day, "notes": notes},
            )
        day = self.pending.pop(contact)
        return (
            "meeting-notes-email-sent",
            account,
            {**base, "meeting_on": day, "message_id": f"<{contact}.{day}@crm>"},
        )

    def _details(self) -> dict[str, str]:
        return {
            "name": self._name(),
            "description": "met at a conference",
            "contact_method": f"+33 6 {self.rng.randrange(10**8):08d}",
        }

    def _created(self, account: str) -> tuple[str, str, dict[str, Any]]:
        contact = str(uuid.uuid4())
        self.contacts[account].append(contact)
        return (
            "contact-created",
            account,
            {"contact_id": contact, "account_id": account, **self._details()},
        )
