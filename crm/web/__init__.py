"""The web side: one module per resource, each reading projections and appending events."""
