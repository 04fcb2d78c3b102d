"""GET /stream over a real socket: per-account news, ids that are sealed positions, catching up.

No test waits for silence: that news did not come is shown by later news coming first.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from crm.web.tokens import Tokens
from harness.processes import wait_until
from tests.web_support import add_contact, csrf_of, sign_up

TOKEN = re.compile(r"[A-Za-z0-9_-]{48}")

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


def tokens_of(data_dir: Path) -> Tokens:
    """The app's own tokens: its secret key is in the data directory (the server fixture's)."""
    return Tokens((data_dir / "secret_key").read_text().strip())


def test_each_account_hears_only_its_own_news(server: str, tmp_path: Path) -> None:
    tokens = tokens_of(tmp_path)
    with browser(server) as alice, browser(server) as bob:
        sign_up(alice, "alice@example.com")
        sign_up(bob, "bob@example.com")
        with listening(alice) as alice_news, listening(bob) as bob_news:
            add_contact(alice, "Ada")
            heard = take(alice_news, 2)
            # the projections whose rows for alice changed; not interactions, which ignores it
            assert {m["event"] for m in heard} == {"contacts", "meeting_notes_emails"}
            assert all(m["id"] == m["data"] and TOKEN.fullmatch(m["id"]) for m in heard)
            # on bob's stream, news of alice's contact would come before news of his own
            add_contact(bob, "Brian")
            (first,) = take(bob_news, 1)
            assert tokens.opened(first["id"]) > max(tokens.opened(m["id"]) for m in heard)


def test_a_reconnecting_page_is_told_of_every_live_projection(server: str, tmp_path: Path) -> None:
    tokens = tokens_of(tmp_path)
    with browser(server) as alice:
        sign_up(alice, "alice@example.com")
        with listening(alice) as news:
            add_contact(alice, "Ada")
            (last,) = take(news, 1)
        wait_until(lambda: caught_up(alice), 10, "every projection at the newest event")
        for reconnect in ({"Last-Event-ID": last["id"]}, {}):
            query = "" if reconnect else f"?since={last['id']}"  # a page's own reconnect
            with alice.stream("GET", "/stream" + query, headers=reconnect) as response:
                told = take(messages(response.iter_lines()), len(PAGE_PROJECTIONS))  # at once
            assert {m["event"] for m in told} == PAGE_PROJECTIONS
            assert all(tokens.opened(m["id"]) >= tokens.opened(last["id"]) for m in told)


def test_a_forged_or_garbage_last_event_id_is_taken_for_none(server: str, tmp_path: Path) -> None:
    tokens, other_key = tokens_of(tmp_path), Tokens("another app's secret key")
    with browser(server) as alice:
        sign_up(alice, "alice@example.com")
        add_contact(alice, "Ada")
        wait_until(lambda: caught_up(alice), 10, "every projection at the newest event")
        newest = max(
            p["position"] for p in alice.get("/health").json()["projector"]["projections"].values()
        )
        genuine = tokens.seal(1)
        forged = genuine[:-2] + ("AA" if genuine[-2:] != "AA" else "BB")
        garbage_ids = ("1", "999999", "-1", "9" * 5000, "%00", forged, other_key.seal(1), "x" * 48)
        for number, garbage in enumerate(garbage_ids):
            with listening(alice, {"Last-Event-ID": garbage}) as news:
                add_contact(alice, f"Bea {number}")
                (first,) = take(news, 1)
            # nothing was announced on connecting: the first news is of the contact added since
            assert tokens.opened(first["id"]) > newest, garbage
            newest = tokens.opened(first["id"])


def added_with_htmx(client: httpx.Client, name: str) -> str:
    """Add a contact as htmx does; the pending fragment's HTML."""
    data = {"name": name, "description": "", "contact_method": ""}
    data["csrf_token"] = csrf_of(client, "/contacts/new")
    response = client.post("/contacts", data=data, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.text
    return response.text


def test_another_accounts_writes_show_in_nothing_a_page_or_stream_carries(
    server: str, tmp_path: Path
) -> None:
    tokens = tokens_of(tmp_path)
    with browser(server) as alice, browser(server) as bob:
        sign_up(alice, "alice@example.com")
        sign_up(bob, "bob@example.com")
        # every value bob's pages and stream carried that stands for a position
        seen: list[str] = []
        with listening(bob) as news:
            for round_ in range(2):
                page = added_with_htmx(bob, f"Brian {round_}")
                assert not re.search(r"after=[0-9]+[\"&]", page)  # a token may start with one
                seen += re.findall(r"after=([^\"&]+)", page)
                for message in take(news, 2):
                    assert message["id"] == message["data"]
                    seen.append(message["id"])
                if round_ == 0:
                    for number in range(50):
                        add_contact(alice, f"Ada {number}")
        assert len(seen) == 6
        # opaque: none is a number, all look alike, no two are the same
        assert all(TOKEN.fullmatch(value) and not value.isdigit() for value in seen)
        assert len({len(value) for value in seen}) == 1
        assert len(set(seen)) == len(seen)
        # yet they carry the positions, which alice's 50 contacts moved on by more than 50
        positions = [tokens.opened(value) for value in seen]
        assert max(positions) - min(positions) > 50


def test_a_forged_or_garbage_after_is_answered_as_now(server: str, tmp_path: Path) -> None:
    tokens = tokens_of(tmp_path)
    with browser(server) as bob:
        sign_up(bob, "bob@example.com")
        contact = add_contact(bob, "Brian")
        wait_until(lambda: caught_up(bob), 10, "every projection at the newest event")
        added = f"/contacts/{contact}/added"
        for garbage in ("1", "99999999999", "x" * 48, tokens.seal(1)[:-2] + "AA", "%00"):
            assert bob.get(added, params={"after": garbage}).status_code == 200, garbage
        # a token of a position the projections have not reached: the fragment waits (204)
        assert bob.get(added, params={"after": tokens.seal(10**12)}).status_code == 204
        assert bob.get(added, params={"after": tokens.seal(1)}).status_code == 200
