"""Each projection's handlers as sentences: given events, then rows; the pure fold, the live
driver and replay on PostgreSQL agree (tests/stories.py)."""

import pytest

from crm.projections.accounts import ACCOUNTS
from crm.projections.contacts import CONTACTS
from crm.projections.interactions import INTERACTIONS
from crm.projections.meeting_notes_emails import MEETING_NOTES_EMAILS
from tests.stories import ACCOUNT, CONTACT, Story, event, given, story_tests

STORIES: dict[str, Story] = {
    "an account is created with its e-mail and time zone": given(
        event("account-created", email="ada@example.com", time_zone="Europe/London"),
    ).then(ACCOUNTS, {"account_id": ACCOUNT, "email": "ada@example.com"}),
    "a contact is created with its details": given(
        event("contact-created", name="Ada", description="poet", contact_method="ada@x.org"),
    ).then(
        CONTACTS,
        {"contact_id": CONTACT, "name": "Ada", "description": "poet", "last_interacted_on": None},
    ),
    "an edit replaces a contact's details and keeps its notes": given(
        event("contact-created", name="Ada"),
        event("next-meeting-notes-written", meeting_on="2026-12-01", notes="*tea*"),
    )
    .when(event("contact-edited", name="Ada L.", description="", contact_method=""))
    .then(
        CONTACTS, {"name": "Ada L.", "next_meeting_on": "2026-12-01", "next_meeting_notes": "*tea*"}
    ),
    "a contact's revisions count its own edits and notes, as the write side does": given(
        event("contact-created"),
        event("next-meeting-notes-written"),
        event("contact-tagged", tag="math"),
    )
    .when(event("contact-edited"), event("contact-edited"), event("next-meeting-notes-written"))
    .then(CONTACTS, {"details_revision": 3, "notes_revision": 2}),
    "a deleted contact has no row": given(event("contact-created"))
    .when(event("contact-deleted"))
    .then(CONTACTS),
    "the last interaction is the latest day, whatever the order recorded": given(
        event("contact-created"),
        event("interaction-recorded", interacted_on="2026-11-20"),
    )
    .when(event("interaction-recorded", interacted_on="2026-11-03"))
    .then(CONTACTS, {"last_interacted_on": "2026-11-20"}),
    "a second interaction on the same day replaces that day's notes": given(
        event("contact-created"),
        event("interaction-recorded", interacted_on="2026-11-20", notes="coffee"),
    )
    .when(
        event("interaction-recorded", interacted_on="2026-11-20", notes="lunch"),
        event("interaction-recorded", interacted_on="2026-11-21", notes="call"),
    )
    .then(
        INTERACTIONS,
        {"interacted_on": "2026-11-20", "notes": "lunch"},
        {"interacted_on": "2026-11-21", "notes": "call"},
    ),
    "a deleted contact's interactions go with it": given(
        event("contact-created"), event("interaction-recorded")
    )
    .when(event("contact-deleted"))
    .then(INTERACTIONS),
    "notes await their e-mail, under the contact's current name": given(
        event("contact-created", name="Ada"),
        event("next-meeting-notes-written", meeting_on="2026-12-03", notes="**agenda**"),
    )
    .when(event("contact-edited", name="Ada L."))
    .then(
        MEETING_NOTES_EMAILS,
        {"contact_name": "Ada L.", "meeting_on": "2026-12-03", "notes": "**agenda**"},
    ),
    "an e-mail sent clears the notes it sent": given(
        event("contact-created"),
        event("next-meeting-notes-written", meeting_on="2026-12-03"),
    )
    .when(event("meeting-notes-email-sent", meeting_on="2026-12-03"))
    .then(MEETING_NOTES_EMAILS, {"meeting_on": None, "notes": None}),
    "notes rewritten for another day stay pending after the e-mail": given(
        event("contact-created"),
        event("next-meeting-notes-written", meeting_on="2026-12-03"),
        event("next-meeting-notes-written", meeting_on="2026-12-10", notes="later"),
    )
    .when(event("meeting-notes-email-sent", meeting_on="2026-12-03"))
    .then(MEETING_NOTES_EMAILS, {"meeting_on": "2026-12-10", "notes": "later"}),
    "tags are kept in order, once each, through a rename": given(
        event("contact-created", name="Ada"),
        event("contact-tagged", tag="math"),
        event("contact-tagged", tag="Family"),
        event("contact-tagged", tag="math"),
    )
    .when(event("contact-edited", name="Ada L."))
    .then(CONTACTS, {"name": "Ada L.", "tags": ["Family", "math"]}),
    "untagging takes one tag off, and a tag the contact lacks changes nothing": given(
        event("contact-created"),
        event("contact-tagged", tag="math"),
        event("contact-tagged", tag="navy"),
    )
    .when(event("contact-untagged", tag="math"), event("contact-untagged", tag="never"))
    .then(CONTACTS, {"tags": ["navy"]}),
    "a contact keeps at most 50 tags, whatever a burst of requests sent": given(
        event("contact-created"),
        *(event("contact-tagged", tag=f"t{n:02}") for n in range(50)),
    )
    .when(event("contact-tagged", tag="one too many"))
    .then(CONTACTS, {"tags": [f"t{n:02}" for n in range(50)]}),
}


test_the_fold, test_the_drivers_agree_with_the_fold = story_tests(STORIES)


def test_a_story_whose_rows_differ_fails() -> None:
    wrong = given(event("contact-created", name="Ada")).then(CONTACTS, {"name": "Grace"})
    with pytest.raises(AssertionError):
        wrong.verify()
