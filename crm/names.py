"""The names processes share through PostgreSQL: advisory-lock keys and NOTIFY channels.

Each is declared here once. Python imports it; sql/ files refer to it as a psql-style variable,
the name in lower case (`:append_lock`, or `:'events_channel'` for a quoted literal), which
crm.migrations fills in when it applies the file.

Lock keys taken with one bigint and with two ints live in separate key spaces in PostgreSQL, so
LEADER_LOCK (a pair) cannot collide with the single-key locks even if the numbers met.
"""

# held by the transaction that applies sql/, so two processes starting together apply a file once
MIGRATION_LOCK = 7346000
# taken by every appending transaction (sql/004) so positions become visible in position order
APPEND_LOCK = 7346001
# with hashtext(projection name): held by the one process that applies that projection's batches
LEADER_LOCK = 7346002
# with hashtext(projection name): held by whoever rebuilds that projection's table from the
# stream (the projector at start, python -m crm.replay), so two rebuilds never share a shadow
REBUILD_LOCK = 7346003
# the events table's doorbell (sql/005): the highest position an inserting statement wrote
EVENTS_CHANNEL = "crm_events"
# a projection advanced: {projection, position, accounts}, heard by every process's broadcaster
PROJECTIONS_CHANNEL = "crm_projections"


def sql_variables() -> dict[str, int | str]:
    """Every name above under its sql/ variable name (the constant's name in lower case)."""
    return {name.lower(): value for name, value in globals().items() if name.isupper()}
