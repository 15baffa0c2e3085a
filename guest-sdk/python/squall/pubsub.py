"""Pub/sub topics, the shared state guests do not have (the manifest's
``pubsub = [...]`` grants them): ``publish``, and ``wait`` for long polling."""

try:
    from componentize_py_types import Err
    from wit_world.imports import pubsub as _pubsub
except ImportError:  # plain CPython: no host
    Err = None
    _pubsub = None

from .host import CapabilityError, _needs_host, as_bytes, raise_as


class PubSubError(CapabilityError):
    """``denied``, ``invalid``, ``limit`` or ``unavailable``."""


class Message:
    """A published message: ``id`` (per topic, from 1), ``topic``,
    ``payload`` (bytes) and ``text``."""

    def __init__(self, id, topic, payload):
        self.id = id
        self.topic = topic
        self.payload = payload

    @property
    def text(self):
        return self.payload.decode("utf-8")

    def __repr__(self):
        return "Message(id=%d, topic=%r)" % (self.id, self.topic)


def publish(topic, payload):
    """Publish ``payload`` (str or bytes) to ``topic``; its id. WebSocket
    connections subscribed to it receive it without any guest waking."""
    _needs_host("squall.pubsub.publish")
    try:
        return _pubsub.publish(topic, as_bytes(payload))
    except Err as err:
        raise_as(PubSubError, err)


async def wait(topic, after=None, timeout=25.0):
    """The messages of ``topic`` with ids above ``after`` (``None``: only
    new ones), waiting up to ``timeout`` seconds for the first; an empty
    list if none came (the primitive of long polling)."""
    _needs_host("squall.pubsub.wait")
    millis = max(0, min(int(timeout * 1000), 2**32 - 1))
    try:
        messages = await _pubsub.wait(topic, after, millis)
    except Err as err:
        raise_as(PubSubError, err)
    return [Message(m.id, m.topic, bytes(m.payload)) for m in messages]
