"""Queues between an app's parts (``tornado.queues`` feeding workers): a
queue is one a manifest consumer reads (``[[app.NAME.consumer]] queue =
"emails"``). ``send`` a message; the consumer ``application.consumer(queue,
fn)`` names gets it in a batch, in a fresh instance. Delivery is at least
once: a message whose consumer called ``message.retry()``, or raised, runs
again after ``retry_delay``; after ``max_retries`` it is a dead letter."""

try:
    from componentize_py_types import Err
    from wit_world.imports import queues as _queues
except ImportError:  # plain CPython: no host
    Err = None
    _queues = None

from .host import CapabilityError, _needs_host, as_bytes, raise_as


class QueueError(CapabilityError):
    """``denied``, ``too-large``, ``quota``, ``invalid`` or ``unavailable``."""


async def send(queue, payload):
    """Send ``payload`` (str or bytes) to ``queue``: the message's id."""
    _needs_host("squall.queues.send")
    try:
        return await _queues.send(queue, as_bytes(payload))
    except Err as err:
        raise_as(QueueError, err)


async def send_batch(queue, payloads):
    """Send several messages, all or none (at most 100): their ids."""
    _needs_host("squall.queues.send_batch")
    try:
        return await _queues.send_batch(queue, [as_bytes(payload) for payload in payloads])
    except Err as err:
        raise_as(QueueError, err)


async def dead_letters(queue, limit=100):
    """The dead letters of ``queue``: objects with ``id``, ``payload``
    (bytes), ``attempts`` and ``error``."""
    _needs_host("squall.queues.dead_letters")
    try:
        return await _queues.dead_letters(queue, limit)
    except Err as err:
        raise_as(QueueError, err)


async def forget_dead_letter(queue, message_id):
    """Forget a dead letter once handled: whether it was there."""
    _needs_host("squall.queues.forget_dead_letter")
    try:
        return await _queues.forget_dead_letter(queue, message_id)
    except Err as err:
        raise_as(QueueError, err)


class Message:
    """One delivered message: ``id``, ``payload`` (bytes), ``attempt`` (1
    the first time). ``retry()`` delivers it again later."""

    __slots__ = ("id", "payload", "attempt", "_retried")

    def __init__(self, id, payload, attempt):
        self.id = id
        self.payload = payload
        self.attempt = attempt
        self._retried = False

    def retry(self):
        self._retried = True


class Batch:
    """A batch of ``queue``'s ``messages``: each is acknowledged when the
    consumer returns, unless it called ``message.retry()``; an exception
    delivers them all again."""

    __slots__ = ("queue", "messages")

    def __init__(self, queue, messages):
        self.queue = queue
        self.messages = messages

    def done(self):
        return [not message._retried for message in self.messages]
