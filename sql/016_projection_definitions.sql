-- What each projection's table was built by: its version and a digest of its declared DDL
-- (crm/projections/base.py, Projection.definition). The tables themselves are declared in their
-- projection modules; when a declaration changes, the projector rebuilds its table from the
-- stream and records the new definition here. NULL: built by sql/ files that are gone, or not
-- built yet; either way rebuilt at the next start.
ALTER TABLE projections ADD COLUMN IF NOT EXISTS definition text;
