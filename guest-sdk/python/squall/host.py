"""The host's capabilities that need no request: timers, config, logging.

asyncio's own timers (``asyncio.sleep(x > 0)``, ``wait_for``) do not work in
a component (its event loop has no clock): these run on the host's.
"""

import logging

# Everything is imported when the component is built: at run time there is
# no filesystem to import from. Outside a component (plain CPython, for the
# pure parts' tests) the bindings are absent.
try:
    from wit_world.imports import config as _config
    from wit_world.imports import log as _log
    from wit_world.imports import time as _time
except ImportError:
    _config = _log = _time = None


class CapabilityError(Exception):
    """A host capability refused a call; ``kind`` says why (``denied``,
    ``invalid``, ``limit``, ``too-large``, ``quota``, ``unavailable``), as
    the Rust SDK's errors do."""

    def __init__(self, kind, detail=""):
        super().__init__("%s: %s" % (kind, detail) if detail else kind)
        self.kind = kind
        self.detail = detail


def kind_of(variant):
    """``KvError_TooLarge()`` → ``"too-large"``."""
    name = type(variant).__name__.split("_", 1)[-1]
    return "".join("-" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def raise_as(error_class, err):
    """Raise the bindings' ``Err`` as ``error_class``, naming its kind."""
    variant = err.value
    raise error_class(kind_of(variant), getattr(variant, "value", "") or "") from None


def as_bytes(value):
    """``str`` as UTF-8, anything bytes-like as ``bytes``."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


# Read a stream from the host this much at a time (the host bounds its total).
_READ_CHUNK = 64 * 1024


async def read_stream(reader):
    """All the bytes of a host stream, until its writer ends it."""
    chunks = []
    with reader:
        while not reader.writer_dropped:
            chunk = await reader.read(_READ_CHUNK)
            if chunk:
                chunks.append(chunk)
    return b"".join(chunks)


def _needs_host(what):
    if _time is None:
        raise RuntimeError(
            "%s needs the Squall host: outside a component (a plain `python -m unittest`) "
            "there is none; test it through `squall serve`" % what
        )


async def sleep(seconds):
    """Suspend the calling coroutine for ``seconds`` on the host's timer
    (Tornado's ``gen.sleep``); other requests go on meanwhile."""
    _needs_host("squall.sleep")
    nanos = max(0, int(seconds * 1_000_000_000))
    await _time.sleep(nanos)


def monotonic():
    """Seconds since an arbitrary fixed point, for measuring intervals."""
    _needs_host("squall.monotonic")
    return _time.monotonic_now() / 1_000_000_000


def config_value(key, default=None):
    """The app's config value ``key`` (``[app.NAME.config]`` or a secret),
    or ``default`` if it has none."""
    if _config is None:
        return default
    value = _config.get(key)
    return default if value is None else value


_LEVELS = (
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARN"),
    (logging.INFO, "INFO"),
    (logging.DEBUG, "DEBUG"),
)


class HostLogHandler(logging.Handler):
    """Sends ``logging`` records to the host's log at their level, with the
    app's name and the request they belong to (the host adds both)."""

    def emit(self, record):
        if _log is None:
            return
        try:
            message = self.format(record)
        except Exception:  # a bad format string must not fail the request
            message = str(record.msg)
        level = _log.Level.TRACE
        for threshold, name in _LEVELS:
            if record.levelno >= threshold:
                level = _log.Level[name]
                break
        _log.write(level, message)


def install_log_handler():
    """Route the root logger to the host (once, at build time)."""
    root = logging.getLogger()
    if not any(isinstance(handler, HostLogHandler) for handler in root.handlers):
        root.addHandler(HostLogHandler())
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
