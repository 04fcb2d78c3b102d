"""Background jobs: the morning meeting-notes e-mail."""
