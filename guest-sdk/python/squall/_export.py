"""The component's exports for an app module: what ``squall build`` wires
``app.py`` to. Not part of the API."""

import logging

from wit_world import exports
from wit_world.exports import app_info
from wit_world.imports import types, websocket_types

from .host import install_log_handler
from .httputil import HTTPHeaders, HTTPServerRequest
from .web import Application

_METHODS = {
    types.Method_Get: "GET",
    types.Method_Head: "HEAD",
    types.Method_Post: "POST",
    types.Method_Put: "PUT",
    types.Method_Delete: "DELETE",
    types.Method_Connect: "CONNECT",
    types.Method_Options: "OPTIONS",
    types.Method_Trace: "TRACE",
    types.Method_Patch: "PATCH",
}

# Read a streamed body this much at a time (the host bounds its total).
_READ_CHUNK = 64 * 1024


def application_of(module):
    """The module's ``application``, or what its ``make_app()`` returns."""
    application = getattr(module, "application", None)
    if application is None and callable(getattr(module, "make_app", None)):
        application = module.make_app()
    if not isinstance(application, Application):
        raise TypeError(
            "app.py must define make_app() returning a squall.web.Application "
            "(or an `application` variable holding one)"
        )
    return application


async def read_body(body):
    if isinstance(body, types.Body_Bytes):
        return bytes(body.value)
    if isinstance(body, types.Body_Stream):
        chunks = []
        with body.value as reader:
            while not reader.writer_dropped:
                chunk = await reader.read(_READ_CHUNK)
                if chunk:
                    chunks.append(chunk)
        return b"".join(chunks)
    return b""


async def request_from_host(request):
    if isinstance(request.method, types.Method_Other):
        method = request.method.value
    else:
        method = _METHODS.get(type(request.method), "GET")
    headers = HTTPHeaders((name, value.decode("latin-1")) for name, value in request.headers)
    body = await read_body(request.body)
    return HTTPServerRequest(method, request.path, request.query, headers, body, request.authority)


def response_to_host(status, headers, body):
    fields = [(name, value.encode("latin-1", errors="replace")) for name, value in headers]
    return types.Response(
        status=status,
        headers=fields,
        body=types.Body_Bytes(body) if body else types.Body_Empty(),
    )


def exports_for(module):
    """The classes componentize-py exports, serving ``module``'s app."""
    install_log_handler()
    application = application_of(module)

    class Handler(exports.Handler):
        async def handle(self, request):
            try:
                ours = await request_from_host(request)
                status, headers, body = await application.serve(ours)
            except Exception:
                logging.getLogger("squall.application").error("Uncaught exception", exc_info=True)
                status, headers, body = 500, [], b"500: Internal Server Error"
            return response_to_host(status, headers, body)

    class WebsocketHandler(exports.WebsocketHandler):
        async def on_open(self, connection, request):
            refusal = response_to_host(404, [], b"")
            return websocket_types.OpenResult_Reject(refusal)

        async def on_message(self, connection, message):
            pass

        async def on_close(self, connection, code, reason):
            pass

    class TcpHandler(exports.TcpHandler):
        async def on_connection(self, connection, input):
            raise RuntimeError("this app serves no TCP listener")

        async def on_open(self, connection):
            pass

        async def on_frame(self, connection, frame):
            pass

        async def on_close(self, connection):
            pass

    class AppInfo(exports.AppInfo):
        def describe(self):
            return app_info.Description(websocket_routes=[], route_errors=[])

    return Handler, WebsocketHandler, TcpHandler, AppInfo
