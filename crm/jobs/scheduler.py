"""The in-process scheduler: the morning e-mail job, every minute and once at start-up.

Every minute, because "due" depends on each account's time zone: the job itself picks what is
due now. The first run at start-up makes up a morning that passed while the app was down.
"""

from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from crm.jobs.morning_email import MorningEmail


def start_scheduler(job: MorningEmail) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        job.run,
        CronTrigger(second=0, timezone=UTC),
        id="morning-email",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=50,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    return scheduler
