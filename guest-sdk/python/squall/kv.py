"""The app's key-value store (the manifest's ``kv = true``): values are
bytes, keys are text; each app has its own."""

try:
    from componentize_py_types import Err
    from wit_world.imports import kv as _kv
except ImportError:  # plain CPython: no host
    Err = None
    _kv = None

from .host import CapabilityError, _needs_host, as_bytes, raise_as


class KVError(CapabilityError):
    """``denied``, ``too-large``, ``quota``, ``invalid`` or ``unavailable``."""


async def get(key):
    """The value (bytes) of ``key``, or ``None``."""
    _needs_host("squall.kv.get")
    try:
        value = await _kv.get(key)
    except Err as err:
        raise_as(KVError, err)
    return None if value is None else bytes(value)


async def set(key, value, ttl=None):
    """Store ``value`` (str or bytes) at ``key``, forgotten after ``ttl``
    seconds if given; returns once it is durable."""
    _needs_host("squall.kv.set")
    ttl_ms = None if ttl is None else max(1, int(ttl * 1000))
    try:
        await _kv.set(key, as_bytes(value), ttl_ms)
    except Err as err:
        raise_as(KVError, err)


async def delete(key):
    """Remove ``key``; whether it was there."""
    _needs_host("squall.kv.delete")
    try:
        return await _kv.delete(key)
    except Err as err:
        raise_as(KVError, err)


async def increment(key, delta=1):
    """Add ``delta`` to the integer at ``key`` (0 if absent), atomically."""
    _needs_host("squall.kv.increment")
    try:
        return await _kv.increment(key, delta)
    except Err as err:
        raise_as(KVError, err)


async def list_keys(prefix="", cursor=None, limit=100):
    """``(keys, next_cursor)``: a page of the keys starting with ``prefix``."""
    _needs_host("squall.kv.list_keys")
    try:
        page = await _kv.list_keys(prefix, cursor, limit)
    except Err as err:
        raise_as(KVError, err)
    return list(page.keys), page.cursor
