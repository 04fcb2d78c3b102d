"""python -m crm.emails: see or send the morning meeting-notes e-mails that are due.

Uses the same code as the scheduled job in the app. --now acts as if it were that moment (an
ISO datetime; without an offset it is taken as UTC). --dry-run also says which due e-mails
cannot be composed, and why the last attempt failed for those that failed before. Uses
DATABASE_URL, or the embedded PostgreSQL in CRM_DATA_DIR; CRM_SMTP_URL, CRM_MAIL_FROM and
CRM_EMAIL_HOUR as the app does.
"""

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from crm import settings as settings_module
from crm.bootstrap import morning_email_job, prepare
from crm.database import open_database
from crm.jobs.morning_email import DueEmail, MorningEmail, compose_error
from crm.projections.accounts import ACCOUNTS
from crm.projections.meeting_notes_emails import MEETING_NOTES_EMAILS
from crm.projections.projector import catch_up
from crm.text import one_line


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO datetime like 2026-12-03T07:30+01:00, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _shown(email: DueEmail) -> str:
    # names and addresses come from stored events: no line breaks or escape sequences in output
    return f"to {one_line(email.to, 320)} about {one_line(email.contact_name, 200)!r}"


def _dry_run(job: MorningEmail, due: list[DueEmail], now: datetime) -> None:
    print(f"{len(due)} e-mail(s) due at {now.isoformat()}:")
    for email in due:
        print(f"  {_shown(email)}, meeting on {email.meeting_on}")
        if problem := compose_error(email, job.sender):
            print(f"    would fail: {problem}")
        if email.last_error:
            print(f"    last attempt failed: {email.last_error}")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m crm.emails",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--dry-run", action="store_true", help="list what is due; send nothing")
    action.add_argument("--send-due", action="store_true", help="send what is due now")
    parser.add_argument(
        "--now", type=_moment, default=None, help="act as if it were this moment (ISO datetime)"
    )
    return parser.parse_args(argv)


async def _run(url: str, settings: settings_module.Settings, args: argparse.Namespace) -> int:
    url, types = await prepare(url)  # then as the runtime role, which owns the tables
    await catch_up(url, types, [ACCOUNTS, MEETING_NOTES_EMAILS])
    now = args.now or datetime.now(UTC)
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        job = morning_email_job(settings, pool, types)
        if args.dry_run:
            _dry_run(job, await job.due(now), now)
            return 0
        report = await job.run(now)
    print(
        f"at {now.isoformat()}: {len(report.due)} due, {len(report.sent)} sent, "
        f"{len(report.skipped)} already sent, being sent or waiting to retry, "
        f"{len(report.failed)} failed"
    )
    for email, error in report.failed:
        print(f"  failed: {_shown(email)}: {error}", file=sys.stderr)
    if report.error:
        print(f"the run stopped: {report.error}", file=sys.stderr)
    return 1 if report.failed or report.error else 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    settings = settings_module.load()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    database = open_database(settings.database_url, settings.data_dir)
    try:
        return asyncio.run(_run(database.url, settings, args))
    finally:
        database.stop()


if __name__ == "__main__":
    sys.exit(main())
