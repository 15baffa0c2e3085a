"""Outbound HTTP through the host's pooled client, shaped like
``tornado.httpclient``: ``await fetch(url)`` or
``await AsyncHTTPClient().fetch(url, method="POST", body=...)``. Only the
destinations the manifest's ``outbound`` grants are reachable."""

try:
    from componentize_py_types import Err
    from wit_world.imports import http_client as _http
    from wit_world.imports import types as _types
except ImportError:  # plain CPython: no host
    Err = None
    _http = _types = None

import http.client
import json as _json

from .host import CapabilityError, _needs_host, as_bytes, kind_of, read_stream
from .httputil import HTTPHeaders


class HTTPClientError(Exception):
    """A fetch that did not answer 2xx (``code``, ``response``), or that
    failed (``code`` 599, as Tornado says for a timeout or a lost
    connection)."""

    def __init__(self, code, message=None, response=None):
        self.code = code
        self.message = message or http.client.responses.get(code, "Unknown")
        self.response = response
        super().__init__(code, self.message, response)

    def __str__(self):
        return "HTTP %d: %s" % (self.code, self.message)


HTTPError = HTTPClientError


class FetchError(HTTPClientError, CapabilityError):
    """The fetch failed before an answer: ``kind`` is ``denied``,
    ``invalid-request``, ``connect``, ``tls``, ``timeout``, ``too-large``,
    ``protocol`` or ``limit``; ``code`` is 599."""

    def __init__(self, kind, detail=""):
        CapabilityError.__init__(self, kind, detail)
        self.code = 599
        self.message = "%s: %s" % (kind, detail) if detail else kind
        self.response = None

    def __str__(self):
        return "HTTP 599: " + self.message


class HTTPRequest:
    """What to fetch (Tornado's ``HTTPRequest``)."""

    def __init__(
        self,
        url,
        method="GET",
        headers=None,
        body=None,
        request_timeout=None,
        follow_redirects=True,
        max_redirects=5,
        **_ignored,
    ):
        self.url = url
        self.method = method.upper()
        self.headers = headers if isinstance(headers, HTTPHeaders) else HTTPHeaders((headers or {}).items())
        self.body = body
        self.request_timeout = request_timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects


class HTTPResponse:
    """An answer: ``code``, ``reason``, ``headers``, ``body`` (bytes)."""

    def __init__(self, request, code, headers, body):
        self.request = request
        self.code = code
        self.reason = http.client.responses.get(code, "Unknown")
        self.headers = headers
        self.body = body
        self.effective_url = request.url
        self.error = None if 200 <= code < 300 else HTTPClientError(code, response=self)

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        return _json.loads(self.body)

    def rethrow(self):
        if self.error is not None:
            raise self.error


_METHODS = {
    "GET": "Method_Get",
    "HEAD": "Method_Head",
    "POST": "Method_Post",
    "PUT": "Method_Put",
    "DELETE": "Method_Delete",
    "CONNECT": "Method_Connect",
    "OPTIONS": "Method_Options",
    "TRACE": "Method_Trace",
    "PATCH": "Method_Patch",
}


def _wit_method(method):
    name = _METHODS.get(method)
    if name is None:
        return _types.Method_Other(method)
    return getattr(_types, name)()


def _fetch_error(err):
    variant = err.value
    return FetchError(kind_of(variant), getattr(variant, "value", "") or "")


async def fetch(request, raise_error=True, **kwargs):
    """Fetch ``request`` (a URL or an :class:`HTTPRequest`; keyword
    arguments as ``HTTPRequest``'s). A non-2xx answer raises
    :class:`HTTPClientError` unless ``raise_error=False``; a failure
    raises :class:`FetchError` (code 599)."""
    _needs_host("squall.httpclient.fetch")
    if not isinstance(request, HTTPRequest):
        request = HTTPRequest(request, **kwargs)
    body = _types.Body_Empty() if request.body is None else _types.Body_Bytes(as_bytes(request.body))
    timeout_ms = None
    if request.request_timeout is not None:
        timeout_ms = max(1, min(int(request.request_timeout * 1000), 2**32 - 1))
    outgoing = _http.OutgoingRequest(
        method=_wit_method(request.method),
        url=request.url,
        headers=[(name, value.encode("latin-1")) for name, value in request.headers.get_all()],
        body=body,
        timeout_ms=timeout_ms,
        max_redirects=min(request.max_redirects, 255) if request.follow_redirects else 0,
        body_done=None,
    )
    try:
        incoming = await _http.fetch(outgoing)
    except Err as err:
        raise _fetch_error(err) from None
    body = await read_stream(incoming.body)
    outcome = await incoming.body_result.read()
    if isinstance(outcome, Err):
        raise _fetch_error(outcome)
    headers = HTTPHeaders((name, bytes(value).decode("latin-1")) for name, value in incoming.headers)
    response = HTTPResponse(request, incoming.status, headers, body)
    if raise_error and response.error is not None:
        raise response.error
    return response


class AsyncHTTPClient:
    """Tornado's client object: ``await AsyncHTTPClient().fetch(url)``."""

    async def fetch(self, request, raise_error=True, **kwargs):
        return await fetch(request, raise_error=raise_error, **kwargs)

    def close(self):
        pass
