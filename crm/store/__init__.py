"""The write side: event types and their schemas, entities, and appending events."""
