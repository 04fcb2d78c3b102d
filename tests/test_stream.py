"""GET /stream over a real socket: per-account news, ids that are positions, catching up.

No test waits for silence: that news did not come is shown by later news coming first.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from harness.processes import wait_until
from tests.web_support import add_contact, sign_up

PAGE_PROJECTIONS = {"contacts", "interactions", "meeting_notes_emails"}


def browser(server: str) -> httpx.Client:
    return httpx.Client(base_url=server, timeout=10)  # also the longest wait for one message


@contextmanager
def listening(
    client: httpx.Client, headers: dict[str, str] | None = None
) -> Iterator[Iterator[dict[str, str]]]:
    """The page's stream, its messages read as they are wanted.

    Once the response has begun the server has subscribed it: it subscribes right after sending
    the headers, before anything else runs, so news of whatever the block then does is heard.
    """
    with client.stream("GET", "/stream", headers=headers or {}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield messages(response.iter_lines())


def messages(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    message: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in message:
                yield message
            message = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            message[field] = value


def take(stream: Iterator[dict[str, str]], count: int) -> list[dict[str, str]]:
    return [next(stream) for _ in range(count)]


def caught_up(client: httpx.Client) -> bool:
    projections = client.get("/health").json()["projector"]["projections"]
    return all(p["lag"] == 0 for p in projections.values())


def test_each_account_hears_only_its_own_news(server: str) -> None:
    with browser(server) as alice, browser(server) as bob:
        sign_up(alice, "alice@example.com")
        sign_up(bob, "bob@example.com")
        with listening(alice) as alice_news, listening(bob) as bob_news:
            add_contact(alice, "Ada")
            heard = take(alice_news, 2)
            # the projections whose rows for alice changed; not interactions, which ignores it
            assert {m["event"] for m in heard} == {"contacts", "meeting_notes_emails"}
            assert all(m["id"] == m["data"] and int(m["id"]) > 0 for m in heard)
            # on bob's stream, news of alice's contact would come before news of his own
            add_contact(bob, "Brian")
            (first,) = take(bob_news, 1)
            assert int(first["id"]) > max(int(m["id"]) for m in heard)


def test_a_reconnecting_page_is_told_what_moved_since_its_last_event_id(server: str) -> None:
    with browser(server) as alice:
        sign_up(alice, "alice@example.com")
        add_contact(alice, "Ada")
        wait_until(lambda: caught_up(alice), 10, "every projection at the newest event")
        with listening(alice, {"Last-Event-ID": "1"}) as news:
            told = take(news, len(PAGE_PROJECTIONS))  # at once, before any new event
        assert {m["event"] for m in told} == PAGE_PROJECTIONS
        assert all(int(m["id"]) > 1 for m in told)
        newest = max(int(m["id"]) for m in told)
        with listening(alice, {"Last-Event-ID": "999999"}) as news:
            add_contact(alice, "Bea")
            (first,) = take(news, 1)
        # nothing was announced on connecting: the first news is of the contact added since
        assert int(first["id"]) > newest
