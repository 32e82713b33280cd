"""What the service builds the engine from: the job body its queue runs, and the launcher
of its archive processes."""

from __future__ import annotations

from backup_api import logcontext
from backup_api.archiving.launcher import ArchiveProcessLauncher
from backup_api.config import Settings
from backup_api.jobs import markers
from backup_api.jobs.backup import run_backup
from backup_api.jobs.drill import run_drill
from backup_api.jobs.queue import Job, JobKind
from backup_api.jobs.restore import run_restore
from backup_api.jobs.supervisor import dying_with_service
from backup_api.state import AppState


async def run_job(state: AppState, job: Job) -> None:
    # The job's lines name the job and its owner; the task may have been started within a
    # request, whose context it inherited: not that request's lines.
    context = logcontext.LogContext(job_id=f"{job.kind}-{job.id}", user_id=job.user_id)
    token = logcontext.enter(context)
    try:
        if job.kind is JobKind.BACKUP:
            await run_backup(state, job)
        elif job.kind is JobKind.DRILL:
            await run_drill(state, job)
        else:
            await run_restore(state, job)
    finally:
        logcontext.leave(token)


def archive_process_launcher(settings: Settings) -> ArchiveProcessLauncher:
    """Archive processes for this instance: they die with it, and carry its marker so a
    restart after a crash finds any left behind (see ``recovery``)."""
    return ArchiveProcessLauncher(
        markers.child_env({}, markers.marker("archive", settings)), wrap=dying_with_service
    )
