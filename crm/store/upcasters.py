"""Every upcaster: for an event type's version n below its latest, the pure function that turns
a payload of version n into one of version n + 1 (crm/store/upcasting.py applies them).

To evolve an event type: write schemas/<type>.v<n+1>.json (a stored version's meaning never
changes: schemas/meanings.lock), add its step here, keyed (type, n), and make the handlers read
the new version; tests/test_upcasting.py fails until the step is here and turns every example of
every version into a valid payload of the latest.
"""

from crm.store.upcasting import Upcaster

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
