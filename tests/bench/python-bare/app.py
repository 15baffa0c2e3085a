"""Hello over componentize-py's generated bindings, no SDK: the floor the
Tornado-shaped SDK is measured against (`squall-bench python`)."""

from wit_world import exports
from wit_world.exports import app_info
from wit_world.imports import types


class Handler(exports.Handler):
    async def handle(self, request):
        return types.Response(
            status=200,
            headers=[("content-type", b"text/html; charset=UTF-8")],
            body=types.Body_Bytes(b"Hello, world"),
        )


class WebsocketHandler(exports.WebsocketHandler):
    async def on_open(self, connection, request):
        raise RuntimeError("no WebSocket routes")

    async def on_message(self, connection, message):
        pass

    async def on_close(self, connection, code, reason):
        pass


class TcpHandler(exports.TcpHandler):
    async def on_connection(self, connection, input):
        raise RuntimeError("no TCP listener")

    async def on_open(self, connection):
        pass

    async def on_frame(self, connection, frame):
        pass

    async def on_close(self, connection):
        pass


class AppInfo(exports.AppInfo):
    def describe(self):
        return app_info.Description(websocket_routes=[], route_errors=[])
