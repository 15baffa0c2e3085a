"""``WebSocketHandler``, shaped like ``tornado.websocket``.

The host holds the connection. In ``hibernate`` mode (the default) each
event runs in a fresh instance, so a handler object lives for one event:
keep what must outlast it in ``self.state`` (a dict the host keeps, as
JSON, up to 64 KiB). In ``live`` mode one instance serves the connection
and the handler object, attributes and all, lives as long as it.
"""

import inspect
import json
import urllib.parse
from urllib.parse import urlparse

try:
    from componentize_py_types import Err
    from wit_world.imports import websocket as _ws
    from wit_world.imports import websocket_types as _types
except ImportError:  # plain CPython: no host
    Err = None
    _ws = _types = None

from .host import raise_as
from .pubsub import PubSubError
from .web import HTTPError, RequestHandler


class WebSocketClosedError(Exception):
    """The connection is gone (or its queue is full, or the message too large:
    ``reason`` says which)."""

    def __init__(self, reason="closed"):
        super().__init__(reason)
        self.reason = reason


class _Sent:
    """What ``write_message`` returns: awaiting it is allowed, as in Tornado."""

    def __await__(self):
        return iter(())


class WebSocketHandler(RequestHandler):
    """Subclass it and define ``open``, ``on_message`` and ``on_close``."""

    def __init__(self, application, request, **kwargs):
        super().__init__(application, request, **kwargs)
        self.connection_id = None
        self.close_code = None
        self.close_reason = None
        self.state = {}
        self._stored_state = b""

    # -- hooks ------------------------------------------------------------

    def open(self, *args, **kwargs):
        """A client connected; raise ``HTTPError`` to refuse it."""

    def on_message(self, message):
        """A message: ``str`` for text, ``bytes`` for binary."""

    def on_close(self):
        """The connection closed; ``close_code``/``close_reason`` say how."""

    def select_subprotocol(self, subprotocols):
        """Pick one of the client's subprotocols (``None``: none)."""
        return None

    def check_origin(self, origin):
        """Whether to accept a connection from ``origin`` (by default, only
        the same host)."""
        return urlparse(origin).netloc.lower() == (self.request.host or "").lower()

    # -- acting on the connection -----------------------------------------

    def write_message(self, message, binary=False):
        """Queue ``message`` for the client: ``str``, ``bytes`` or a
        ``dict`` (sent as JSON text)."""
        if isinstance(message, dict):
            message = json.dumps(message)
        if binary or isinstance(message, (bytes, bytearray)):
            frame = _types.WsMessage_Binary(bytes(message) if not isinstance(message, str) else message.encode("utf-8"))
        else:
            frame = _types.WsMessage_Text(message)
        try:
            _ws.send(self.connection_id, frame)
        except Err as err:
            raise WebSocketClosedError(type(err.value).__name__.split("_", 1)[-1].lower()) from None
        return _Sent()

    def close(self, code=None, reason=None):
        """Close the connection (1000 unless ``code`` is given)."""
        _ws.close(self.connection_id, code or 1000, reason or "")

    def subscribe(self, topic, with_id=False):
        """Have the host forward every message of pub/sub ``topic`` to this
        client, without waking the app (``with_id``: as ``{"id", "payload"}``)."""
        try:
            _ws.subscribe(self.connection_id, topic, with_id)
        except Err as err:
            raise_as(PubSubError, err)

    def unsubscribe(self, topic):
        _ws.unsubscribe(self.connection_id, topic)

    # -- the host's events --------------------------------------------------

    def _attach(self, connection_id):
        self.connection_id = connection_id
        stored = bytes(_ws.get_state(connection_id))
        self._stored_state = stored
        if stored:
            try:
                self.state = json.loads(stored)
            except ValueError:
                self.state = {}

    def _save_state(self):
        encoded = json.dumps(self.state, separators=(",", ":")).encode("utf-8")
        if encoded != self._stored_state and not (encoded == b"{}" and not self._stored_state):
            try:
                _ws.set_state(self.connection_id, encoded)
            except Err as err:
                raise WebSocketClosedError(type(err.value).__name__.split("_", 1)[-1].lower()) from None
            self._stored_state = encoded

    async def _run(self, hook, *args):
        result = hook(*args)
        if inspect.isawaitable(result):
            await result

    async def _open(self, path_args, path_kwargs):
        """Accept (the chosen subprotocol) or refuse (an HTTP status)."""
        origin = self.request.headers.get("origin")
        if origin and not self.check_origin(origin):
            raise HTTPError(403, "cross-origin WebSocket from %s", origin)
        offered = self.request.headers.get("sec-websocket-protocol")
        protocol = None
        if offered:
            protocol = self.select_subprotocol([item.strip() for item in offered.split(",")])
        self.path_args = [urllib.parse.unquote(arg) for arg in path_args]
        self.path_kwargs = {key: urllib.parse.unquote(value) for key, value in path_kwargs.items()}
        await self._run(self.open, *self.path_args, **self.path_kwargs)
        self._save_state()
        return protocol
