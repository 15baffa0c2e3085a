"""Work to run later (Tornado's ``IOLoop.call_later`` and ``call_at``),
granted by the manifest's ``jobs = true``: ``after`` or ``at`` keeps a job
in the server's backend, and once it is due the host runs the handler
``application.on_job(name, ...)`` names, in a fresh instance. Jobs survive
a restart; a failing one runs again (1 s later, then twice as long each
time) until ``jobs_max_attempts``, so ``job.attempt`` says which run this
is and ``job.id`` names the job, to make its work idempotent."""

try:
    from componentize_py_types import Err
    from wit_world.imports import jobs as _jobs
except ImportError:  # plain CPython: no host
    Err = None
    _jobs = None

from .host import CapabilityError, _needs_host, as_bytes, raise_as


class JobError(CapabilityError):
    """``denied``, ``too-large``, ``quota``, ``invalid`` or ``unavailable``."""


async def after(delay, name, payload=b""):
    """Run the handler of ``name`` with ``payload`` (str or bytes) in
    ``delay`` seconds; the job's id, for ``cancel``."""
    _needs_host("squall.jobs.after")
    try:
        return await _jobs.after(max(0, int(delay * 1000)), name, as_bytes(payload))
    except Err as err:
        raise_as(JobError, err)


async def at(when, name, payload=b""):
    """Run the handler of ``name`` at ``when`` (seconds since the epoch, as
    ``time.time()``; now if it has passed); the job's id."""
    _needs_host("squall.jobs.at")
    try:
        return await _jobs.at(max(0, int(when * 1000)), name, as_bytes(payload))
    except Err as err:
        raise_as(JobError, err)


async def cancel(job_id):
    """Forget the job ``job_id`` if it has not started: whether it did."""
    _needs_host("squall.jobs.cancel")
    try:
        return await _jobs.cancel(job_id)
    except Err as err:
        raise_as(JobError, err)


class Job:
    """One run of a job: its ``id``, ``name``, ``payload`` (bytes) and
    ``attempt`` (1 the first time)."""

    __slots__ = ("id", "name", "payload", "attempt")

    def __init__(self, id, name, payload, attempt):
        self.id = id
        self.name = name
        self.payload = payload
        self.attempt = attempt

    def __repr__(self):
        return "Job(%r, %r, attempt=%d)" % (self.id, self.name, self.attempt)

