"""Write Squall handlers in Python, the way Tornado's ``tornado.web`` does.

A Squall Python app is an ``app.py`` that defines ``make_app()`` (or an
``application``) returning a :class:`squall.web.Application`; ``squall serve
DIR`` builds it into a sandboxed WebAssembly component with componentize-py
and serves it::

    import squall.web

    class MainHandler(squall.web.RequestHandler):
        async def get(self):
            self.write("Hello, world")

    def make_app():
        return squall.web.Application([(r"/", MainHandler)])

The host runs each request in a fresh instance (or a reused one, per the
manifest's ``reuse``); ``await squall.sleep(s)`` and the other coroutines
suspend only the request that awaits them.
"""

from . import gen, jobs, kv, pubsub, queues
from .gen import multi, spawn, with_timeout
from .host import CapabilityError, config_value, monotonic, sleep
from .httpclient import AsyncHTTPClient, FetchError, HTTPClientError, fetch
from .websocket import WebSocketClosedError, WebSocketHandler
from .web import (
    Application,
    HTTPError,
    MissingArgumentError,
    RequestHandler,
    authenticated,
)

__all__ = [
    "AsyncHTTPClient",
    "FetchError",
    "HTTPClientError",
    "fetch",
    "gen",
    "multi",
    "spawn",
    "with_timeout",
    "Application",
    "CapabilityError",
    "WebSocketClosedError",
    "WebSocketHandler",
    "jobs",
    "kv",
    "pubsub",
    "queues",
    "HTTPError",
    "MissingArgumentError",
    "RequestHandler",
    "authenticated",
    "config_value",
    "monotonic",
    "sleep",
]
