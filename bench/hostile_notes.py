"""One account posting hostile notes: what it costs everyone else.

Serves the app with `python -m crm` on a fresh embedded database. Account B times GET /contacts,
saving an ordinary note (and counts how its saves were answered) and how long its new contact
takes to appear in the list (the projection): first alone (the baseline), then while other
accounts, each from its own thread, post the notes that stopped or stalled the seed (issue 7).

    python -m bench.hostile_notes [--requests N] [--flooders N]
"""

import argparse
import re
import statistics
import threading
import time
from collections.abc import Callable

import httpx

from bench.server import database_url
from harness.processes import App

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
CONTACT = re.compile(r"/contacts/([0-9a-f-]{36})")
HOSTILE = [
    "1. " * 6_666,
    "[" * 20_000,
    "![" * 10_000,
    "*_" * 10_000,
    ("[a]: /" + "&" * 5_000 + "\n\n" + "[a]" * 3_000)[:20_000],  # ~3 s of CPU, unchecked
    "[a]: /" + "u" * 18_000 + "\n\n" + "[a][a]" * 300,  # 5 MB of HTML, unchecked
]


def _token(client: httpx.Client, path: str) -> str:
    match = TOKEN.search(client.get(path).text)
    assert match, path
    return match.group(1)


def _sign_up(client: httpx.Client, email: str) -> None:
    data = {"email": email, "password": "correct horse", "time_zone": "UTC"}
    response = client.post("/signup", data={**data, "csrf_token": _token(client, "/signup")})
    assert response.status_code == 303, response.text


def _add_contact(client: httpx.Client, name: str) -> str:
    data = {"name": name, "description": "", "contact_method": ""}
    response = client.post("/contacts", data={**data, "csrf_token": _token(client, "/contacts")})
    match = CONTACT.search(response.headers.get("location", ""))
    assert match, response.headers
    return match.group(1)


def _post_notes(client: httpx.Client, token: str, contact: str, notes: str) -> int:
    response = client.post(
        f"/contacts/{contact}/next_meeting",
        data={"meeting_on": "2026-12-24", "meeting_notes": notes},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    return response.status_code


def _timings(action: Callable[[], object], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _until_listed(client: httpx.Client, name: str) -> float:
    """ms from adding a contact (htmx: answered at once) until the list shows it."""
    token = _token(client, "/contacts")
    started = time.perf_counter()
    client.post(
        "/contacts",
        data={"name": name, "description": "", "contact_method": ""},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )
    while name not in client.get("/contacts?section=list").text:
        time.sleep(0.005)
    return (time.perf_counter() - started) * 1000


def _summary(label: str, timings: list[float]) -> str:
    ordered = sorted(timings)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{label}: p50 {statistics.median(ordered):7.1f} ms   p99 {p99:7.1f} ms"


def _measure(b: httpx.Client, contact: str, requests: int, phase: str) -> None:
    token = _token(b, f"/contacts/{contact}")
    lists = _timings(lambda: b.get("/contacts"), requests)
    answers: list[int] = []
    saves = _timings(
        lambda: answers.append(_post_notes(b, token, contact, "**agenda**")), requests // 5
    )
    listed = [_until_listed(b, f"{phase} {n}") for n in range(10)]
    print(f"  {phase}")
    print("    " + _summary("B: GET /contacts           ", lists))
    print(
        "    " + _summary("B: save an ordinary note   ", saves) + f"   answers {_counts(answers)}"
    )
    print("    " + _summary("B: new contact in the list ", listed))


def _counts(answers: list[int]) -> dict[int, int]:
    return {code: answers.count(code) for code in sorted(set(answers))}


def _flood(base: str, stop: threading.Event, answers: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=60) as h:
        _sign_up(h, f"h{threading.get_ident()}@example.com")
        contact = _add_contact(h, "Target")
        token = _token(h, f"/contacts/{contact}")
        while not stop.is_set():
            for notes in HOSTILE:
                answers.append(_post_notes(h, token, contact, notes))


def main(requests: int, flooders: int) -> None:
    with database_url() as url:
        app = App({"DATABASE_URL": url, "CRM_LOG_LEVEL": "ERROR"}).start()
        try:
            app.health()
            base = f"http://127.0.0.1:{app.port}"
            with httpx.Client(base_url=base, timeout=60) as b:
                _sign_up(b, "b@example.com")
                contact = _add_contact(b, "Friend")
                print(f"account B, {requests} list requests, {requests // 5} note saves:")
                _measure(b, contact, requests, "baseline, alone")
                stop, answers = threading.Event(), []
                threads = [
                    threading.Thread(target=_flood, args=(base, stop, answers))
                    for _ in range(flooders)
                ]
                for thread in threads:
                    thread.start()
                time.sleep(2)  # let the flood build up before measuring under it
                _measure(b, contact, requests, f"while {flooders} accounts post hostile notes")
                stop.set()
                for thread in threads:
                    thread.join()
                print(f"  hostile posts answered: {_counts(answers)}")
                health = b.get("/health").json()
                print(f"  /health: {health['status']}, parked {health['parked_count']}")
        finally:
            app.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--flooders", type=int, default=4)
    arguments = parser.parse_args()
    main(arguments.requests, arguments.flooders)
