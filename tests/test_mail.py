"""Sending mail: the outbox folder a development setup writes meeting notes into."""

import os
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from crm.jobs.mail import OutboxTransport


def message(number: int) -> EmailMessage:
    mail = EmailMessage()
    mail["Message-ID"] = f"<{number}@crm.example>"
    mail["To"] = "alice@example.com"
    mail["Subject"] = "Your meeting with Ada today"
    mail.set_content("the notes for the meeting")
    return mail


@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0o022)  # what most systems run with: files others can read
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_outbox_mails_are_readable_by_their_owner_only(tmp_path: Path, open_umask: None) -> None:
    outbox = tmp_path / "data" / "outbox"
    OutboxTransport(outbox).send(message(1))
    (mail,) = outbox.iterdir()
    assert (mode(outbox), mode(mail)) == (0o700, 0o600)
    assert b"the notes for the meeting" in mail.read_bytes()


def test_an_existing_outbox_and_mail_are_made_private(tmp_path: Path, open_umask: None) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir(mode=0o755)
    written_before = outbox / "1_at_crm.example.eml"
    written_before.write_bytes(b"old")
    written_before.chmod(0o644)
    OutboxTransport(outbox).send(message(1))
    OutboxTransport(outbox).send(message(2))
    assert mode(outbox) == 0o700
    assert {path.name: mode(path) for path in outbox.iterdir()} == {
        "1_at_crm.example.eml": 0o600,
        "2_at_crm.example.eml": 0o600,
    }
    assert b"the notes" in written_before.read_bytes()
