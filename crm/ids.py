"""How the app writes an id (a uuid): lower case, 8-4-4-4-12, the form events and tables hold.

Two readings, one canonical form. What a person or a caller sends (a URL, a command's argument)
is taken only when written so, in either case; what a stored event holds is taken as leniently
as its schema and PostgreSQL took it, so that it still folds into the key of the same contact.
"""

import re
import uuid

# uuid.UUID also takes "urn:uuid:", braces, dashes anywhere, and (through int()) "+", "_",
# spaces and non-ASCII digits, which PostgreSQL refuses; none of those name anything here.
# Capitals PostgreSQL takes, and they name the same contact.
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def canonical_uuid(value: str) -> str | None:
    """value in lower case if it is written 8-4-4-4-12 (in either case); None otherwise."""
    return value.lower() if _UUID.fullmatch(value) else None


def canonical_key(value: object) -> str:
    """A key as a projection's table gives it back: a uuid in lower case, 8-4-4-4-12.

    The schemas' uuid format (and PostgreSQL) also accept capitals and other dash layouts; an
    event that carries one must still fold into the same key as the others about that contact.
    Anything that is no uuid at all is kept as it is.
    """
    key = str(value)
    # runs per event in replay's hot loop: the common case, whose dashes the schema put in place
    if len(key) == 36 and key.islower():
        return key
    try:
        return str(uuid.UUID(key))
    except ValueError:
        return key
