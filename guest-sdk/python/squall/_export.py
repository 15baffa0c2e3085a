"""The component's exports for an app module: what ``squall build`` wires
``app.py`` to. Not part of the API."""

import asyncio
import inspect
import logging
import types as python_types
import urllib.parse

import componentize_py_async_support
from componentize_py_types import Err
import wit_world
from wit_world import exports
from wit_world.exports import app_info
from wit_world.imports import types, websocket_types
from wit_world.imports.websocket import close as _ws_close

from .host import install_log_handler, read_stream
from .httputil import HTTPHeaders, HTTPServerRequest
from .web import Application, HTTPError, _reverse_template
from .websocket import WebSocketHandler
from .jobs import Job
from .queues import Batch, Message

app_log = logging.getLogger("squall.application")

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


async def request_from_host(request):
    if isinstance(request.method, types.Method_Other):
        method = request.method.value
    else:
        method = _METHODS.get(type(request.method), "GET")
    headers = HTTPHeaders.from_lowercase([(name, value.decode("latin-1")) for name, value in request.headers])
    body = request.body
    if isinstance(body, types.Body_Bytes):
        body = bytes(body.value)
    elif isinstance(body, types.Body_Stream):
        body = await read_stream(body.value)
    else:
        body = b""
    return HTTPServerRequest(method, request.path, request.query, headers, body, request.authority)


def response_to_host(status, headers, body):
    fields = [(name, value.encode("latin-1", errors="replace")) for name, value in headers]
    return types.Response(
        status=status,
        headers=fields,
        body=types.Body_Bytes(body) if body else types.Body_Empty(),
    )


def websocket_routes(application):
    """The host's patterns for the app's WebSocket routes, and the routes
    that cannot be one (a WebSocket route is a path with groups)."""
    patterns, errors = [], []
    for spec in application.rules:
        if not (isinstance(spec.handler_class, type) and issubclass(spec.handler_class, WebSocketHandler)):
            continue
        path, groups = _reverse_template(spec.pattern)
        if path is None or not path.startswith("/"):
            errors.append(
                "WebSocket route %r: only a path, with groups for its parts, can be a WebSocket route"
                % spec.pattern
            )
            continue
        pattern = path.replace("%%", "%")
        for index in range(groups):
            pattern = pattern.replace("%s", "{arg%d}" % index, 1)
        patterns.append(pattern)
    return patterns, errors


async def _refusal(application, handler, error):
    """An HTTP answer refusing an upgrade, from the handler's error page."""
    if isinstance(error, HTTPError):
        handler.send_error(error.status_code, exc_info=(type(error), error, error.__traceback__))
    else:
        app_log.error("Uncaught exception in open()", exc_info=(type(error), error, error.__traceback__))
        handler.send_error(500)
    return response_to_host(*handler._response_parts())


class _Streamed:
    """One response as the host gets it: whole when the handler ends
    without flushing, else its head at the first flush and its body as a
    stream, chunk by chunk, in order."""

    def __init__(self):
        self.head = None
        self.chunks = None
        self.writer = None

    def flush(self, first, status, headers, chunk):
        done = asyncio.get_event_loop().create_future()
        if first:
            writer, reader = wit_world.byte_stream()
            self.writer = writer
            self.chunks = asyncio.Queue()
            componentize_py_async_support.spawn(self._write_body())
            self.head = response_to_host_streaming(status, headers, reader)
        self.chunks.put_nowait((chunk, done))
        return done

    def finish(self, status, headers, body):
        if self.chunks is None:
            self.head = response_to_host(status, headers, body)
            return
        self.chunks.put_nowait((body, None))
        self.chunks.put_nowait((None, None))

    async def _write_body(self):
        with self.writer as writer:
            while True:
                chunk, done = await self.chunks.get()
                if chunk is None:
                    break
                if chunk and not writer_gone(writer):
                    await writer.write_all(chunk)
                if done is not None and not done.done():
                    done.set_result(None)


_DONE = object()


def _step(coroutine, value, error):
    """Resume ``coroutine`` with what it awaited: the next thing it awaits,
    or ``_DONE``."""
    try:
        return coroutine.send(value) if error is None else coroutine.throw(error)
    except StopIteration:
        return _DONE


def _forward(awaited):
    """Pass what a coroutine awaits up to the task running it; what came
    back, as ``(value, error)``."""
    try:
        return (yield awaited), None
    except GeneratorExit:  # the driver itself is being closed
        raise
    except BaseException as error:  # cancellation too: the coroutine decides
        return None, error


@python_types.coroutine
def _drive(coroutine, awaited, streamed=None):
    """Run ``coroutine``, which awaits ``awaited``, in the calling task:
    to its end, or, given ``streamed``, until the head of its response is
    known (what it streams after that goes on in a task of its own; a task
    per request would cost a fifth of a hello's time). Returns the head."""
    while awaited is not _DONE:
        if streamed is not None and streamed.head is not None:
            componentize_py_async_support.spawn(_drive(coroutine, awaited))
            break
        value, error = yield from _forward(awaited)
        awaited = _step(coroutine, value, error)
    return None if streamed is None else streamed.head


def writer_gone(writer):
    """Whether the host dropped the body's reading end (the client left)."""
    return getattr(writer, "reader_dropped", False)


def response_to_host_streaming(status, headers, reader):
    fields = [(name, value.encode("latin-1", errors="replace")) for name, value in headers]
    return types.Response(status=status, headers=fields, body=types.Body_Stream(reader))


def exports_for(module):
    """The classes componentize-py exports, serving ``module``'s app."""
    install_log_handler()
    application = application_of(module)

    async def serve(request, streamed):
        try:
            ours = await request_from_host(request)
            status, headers, body = await application.serve(ours, streamed.flush)
        except BaseException:  # whatever it is, the host gets an answer
            app_log.error("Uncaught exception", exc_info=True)
            status, headers, body = 500, [], b"500: Internal Server Error"
        streamed.finish(status, headers, body)

    class Handler(exports.Handler):
        async def handle(self, request):
            streamed = _Streamed()
            serving = serve(request, streamed)
            awaited = _step(serving, None, None)
            if awaited is _DONE:  # answered without awaiting the host
                return streamed.head
            return await _drive(serving, awaited, streamed)

    # Handler objects of open connections: in `live` mode the instance (and
    # so this dict) outlives events; in `hibernate` mode it starts empty.
    live = {}

    def handler_for(connection):
        handler = live.get(connection.id)
        if handler is None:
            # The host keeps no request between events: the path is all
            # a later event knows of it.
            request = HTTPServerRequest("GET", connection.path, "", HTTPHeaders(), b"", "")
            handler_class, kwargs, args, path_kwargs = application.find_handler(request)
            if not issubclass(handler_class, WebSocketHandler):
                return None
            handler = handler_class(application, request, **kwargs)
            handler.path_args = [urllib.parse.unquote(arg) for arg in args]
            handler.path_kwargs = {key: urllib.parse.unquote(value) for key, value in path_kwargs.items()}
            live[connection.id] = handler
        # The state may have changed in another instance since.
        handler._attach(connection.id)
        return handler

    class WebsocketHandler(exports.WebsocketHandler):
        async def on_open(self, connection, request):
            try:
                ours = await request_from_host(request)
                handler_class, kwargs, args, path_kwargs = application.find_handler(ours)
                if not (isinstance(handler_class, type) and issubclass(handler_class, WebSocketHandler)):
                    return websocket_types.OpenResult_Reject(response_to_host(404, [], b""))
                handler = handler_class(application, ours, **kwargs)
            except Exception:
                app_log.error("Cannot open a WebSocket (%s)", connection.path, exc_info=True)
                return websocket_types.OpenResult_Reject(response_to_host(500, [], b""))
            try:
                handler._attach(connection.id)
                protocol = await handler._open(args, path_kwargs)
            except Exception as error:
                return websocket_types.OpenResult_Reject(await _refusal(application, handler, error))
            live[connection.id] = handler
            return websocket_types.OpenResult_Accept(websocket_types.Accept(protocol))

        async def on_message(self, connection, message):
            handler = None
            try:
                handler = handler_for(connection)
                if handler is None:
                    return
                payload = message.value
                if isinstance(message, websocket_types.WsMessage_Binary):
                    payload = bytes(payload)
                await handler._run(handler.on_message, payload)
                handler._save_state()
            except Exception:
                app_log.error("Uncaught exception in on_message (%s)", connection.path, exc_info=True)
                live.pop(connection.id, None)
                _ws_close(connection.id, 1011, "internal error")

        async def on_close(self, connection, code, reason):
            try:
                handler = handler_for(connection)
                live.pop(connection.id, None)
                if handler is None:
                    return
                handler.close_code, handler.close_reason = code, reason
                await handler._run(handler.on_close)
            except Exception:
                app_log.error("Uncaught exception in on_close (%s)", connection.path, exc_info=True)

    class TcpHandler(exports.TcpHandler):
        async def on_connection(self, connection, input):
            raise RuntimeError("this app serves no TCP listener")

        async def on_open(self, connection):
            pass

        async def on_frame(self, connection, frame):
            pass

        async def on_close(self, connection):
            pass

    class Background(exports.Background):
        async def on_schedule(self, name, payload, scheduled_at):
            handler = application.schedules.get(name)
            if handler is None:
                raise Err("no handler for schedule %r" % name)
            try:
                result = handler(Tick(name, bytes(payload), scheduled_at / 1000))
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                app_log.error("Uncaught exception in schedule %r", name, exc_info=True)
                raise Err("%s: %s" % (type(error).__name__, error))

        async def on_job(self, id, name, payload, attempt):
            handler = application.jobs.get(name)
            if handler is None:
                raise Err("no handler for job %r" % name)
            try:
                result = handler(Job(id, name, bytes(payload), attempt))
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                app_log.error("Uncaught exception in job %r", name, exc_info=True)
                raise Err("%s: %s" % (type(error).__name__, error))

        async def on_messages(self, queue, messages):
            handler = application.consumers.get(queue)
            if handler is None:
                raise Err("no consumer for queue %r" % queue)
            batch = Batch(
                queue,
                [Message(message.id, bytes(message.payload), message.attempt) for message in messages],
            )
            try:
                result = handler(batch)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:
                app_log.error("Uncaught exception in consumer of %r", queue, exc_info=True)
                raise Err("%s: %s" % (type(error).__name__, error))
            return batch.done()

    patterns, route_errors = websocket_routes(application)
    schedules = sorted(application.schedules)
    jobs = sorted(application.jobs)

    class AppInfo(exports.AppInfo):
        def describe(self):
            return app_info.Description(
                websocket_routes=patterns,
                route_errors=route_errors,
                schedules=schedules,
                jobs=jobs,
                consumers=sorted(application.consumers),
            )

    return Handler, WebsocketHandler, TcpHandler, Background, AppInfo


class Tick:
    """One tick of a schedule: its ``name``, ``payload`` (bytes) and
    ``scheduled_at`` (when it was due, seconds since the epoch as
    ``time.time()``; the same on every host)."""

    __slots__ = ("name", "payload", "scheduled_at")

    def __init__(self, name, payload, scheduled_at):
        self.name = name
        self.payload = payload
        self.scheduled_at = scheduled_at
