"""Test handlers under plain CPython, as ``tornado.testing`` does: a
request goes through the app's routing, handlers, cookies and errors
without a host (host capabilities such as ``squall.sleep`` raise)."""

import asyncio
import unittest

from .httputil import HTTPHeaders, HTTPServerRequest


class HTTPResponse:
    """What the app answered: ``code``, ``headers``, ``body`` (bytes)."""

    def __init__(self, code, headers, body):
        self.code = code
        self.headers = HTTPHeaders(headers)
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8")


async def fetch_from(app, path, method="GET", headers=None, body=b""):
    """Serve one request with ``app``; its :class:`HTTPResponse`."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    path, _, query = path.partition("?")
    fields = HTTPHeaders((headers or {}).items())
    request = HTTPServerRequest(method, path, query, fields, body or b"", "127.0.0.1")
    code, answer_headers, answer_body = await app.serve(request)
    return HTTPResponse(code, answer_headers, answer_body)


class AsyncHTTPTestCase(unittest.TestCase):
    """Define ``get_app()``; ``self.fetch(path, method=..., body=...)``
    serves a request with it."""

    def get_app(self):
        raise NotImplementedError("return your Application from get_app()")

    def setUp(self):
        super().setUp()
        self._app = self.get_app()

    def fetch(self, path, method="GET", headers=None, body=b""):
        return asyncio.run(fetch_from(self._app, path, method, headers, body))
