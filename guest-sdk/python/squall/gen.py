"""Coroutine helpers over the host's clock, as ``tornado.gen`` has them:
``sleep``, ``with_timeout``, ``multi``; and ``spawn`` for work after the
response (Tornado's ``IOLoop.spawn_callback``)."""

import asyncio
import datetime

try:
    import componentize_py_async_support as _tasks
except ImportError:  # plain CPython: no host
    _tasks = None

from .host import _needs_host, monotonic, sleep

TimeoutError = asyncio.TimeoutError


# How long a timer step is: a finished wait holds its task at most this long.
_STEP = 0.05


async def _drain(awaitable):
    try:
        await awaitable
    except BaseException:  # its outcome is no longer anyone's
        pass


def _finish_in_background(future):
    # componentize-py cannot cancel a host call: a task left waiting on one
    # when the request ends would trap its instance, so it finishes first.
    _tasks.spawn(_drain(future))


async def with_timeout(timeout, awaitable):
    """``awaitable``'s result, or ``TimeoutError`` once ``timeout`` (seconds,
    a ``timedelta``, or a deadline on :func:`squall.monotonic`'s clock as
    Tornado's ``IOLoop.time()``) has passed. A timed-out awaitable is not
    cancelled: it runs on after the response, within the request's limits
    (give a fetch its own ``request_timeout`` to stop it at the host)."""
    _needs_host("squall.with_timeout")
    if isinstance(timeout, datetime.timedelta):
        deadline = monotonic() + timeout.total_seconds()
    elif timeout > 1e6:
        deadline = timeout
    else:
        deadline = monotonic() + timeout
    work = asyncio.ensure_future(awaitable)
    while not work.done():
        remaining = deadline - monotonic()
        if remaining <= 0:
            _finish_in_background(work)
            raise TimeoutError("timed out")
        step = asyncio.ensure_future(sleep(min(remaining, _STEP)))
        await asyncio.wait({work, step}, return_when=asyncio.FIRST_COMPLETED)
        if not step.done():
            _finish_in_background(step)
    return work.result()


async def multi(children):
    """The results of awaiting every child at once: a list for a list, a
    dict for a dict (Tornado's ``gen.multi``)."""
    if isinstance(children, dict):
        keys = list(children)
        values = await asyncio.gather(*(children[key] for key in keys))
        return dict(zip(keys, values))
    return list(await asyncio.gather(*children))


def spawn(coroutine):
    """Run ``coroutine`` beside the request, after its response if need be
    (within the request's ``timeout`` and ``cpu_time``)."""
    _needs_host("squall.spawn")
    _tasks.spawn(coroutine)
