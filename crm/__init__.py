"""crm: a personal CRM, event-sourced on PostgreSQL."""

from pathlib import Path

# Schemas, SQL, templates and static files live beside the package, at the top of the checkout.
ROOT = Path(__file__).resolve().parent.parent
