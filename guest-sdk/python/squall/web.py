"""``RequestHandler`` and ``Application``, shaped like ``tornado.web``."""

import datetime
import email.utils
import functools
import hashlib
import http.client
import http.cookies
import inspect
import json
import logging
import os
import re
import traceback
import urllib.parse

from . import security, template
from .host import config_value
from .httputil import HTTPInputError, decode_argument

app_log = logging.getLogger("squall.application")
gen_log = logging.getLogger("squall.general")

_ARG_DEFAULT = object()


class HTTPError(Exception):
    """Raise to answer with ``status_code``; ``log_message`` goes to the
    log (formatted with ``args``), never to the client; ``reason`` replaces
    the status line's phrase."""

    def __init__(self, status_code=500, log_message=None, *args, reason=None):
        super().__init__(status_code, log_message)
        self.status_code = status_code
        self.log_message = log_message
        self.args = args
        self.reason = reason

    def __str__(self):
        message = f"HTTP {self.status_code}: {self.reason or http.client.responses.get(self.status_code, 'Unknown')}"
        if self.log_message:
            return message + " (" + _format(self.log_message, self.args) + ")"
        return message


class MissingArgumentError(HTTPError):
    """A required argument is absent: ``400 Missing argument NAME``."""

    def __init__(self, arg_name):
        super().__init__(400, "Missing argument %s" % arg_name)
        self.arg_name = arg_name
        self.reason = "Missing argument %s" % arg_name


class Finish(Exception):
    """Raise to end the request with what has been written (Tornado's
    ``tornado.web.Finish``)."""


class RequestHandler:
    """Subclass it and define ``async def get(self, *args)`` (or ``post``,
    ``put``, ``patch``, ``delete``, ``head``, ``options``); a new handler
    object serves each request."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

    # Immutable defaults live on the class: a handler object is made per
    # request, and each attribute set costs (CPython in wasm is slow).
    _finished = False
    _headers_written = False
    # Set by the component's glue: sends a flushed chunk (None under plain
    # CPython, where a flush only keeps the buffer).
    _flush_hook = None

    def __init__(self, application, request, **kwargs):
        self.application = application
        self.request = request
        self.path_args = []
        self.path_kwargs = {}
        self._new_cookies = []
        self.clear()
        self.initialize(**kwargs)

    # -- hooks ------------------------------------------------------------

    def initialize(self, **kwargs):
        """Receives the route's third element (a dict) as keyword arguments."""

    @property
    def settings(self):
        """The application's settings."""
        return self.application.settings

    def prepare(self):
        """Runs before the method (may be ``async``); may finish the request."""

    def on_finish(self):
        """Runs after the response is sent."""

    def get_current_user(self):
        """Override to say who is logged in (``None``: nobody)."""
        return None

    @property
    def current_user(self):
        """The user ``get_current_user`` returned, asked once per request."""
        if not hasattr(self, "_current_user"):
            self._current_user = self.get_current_user()
        return self._current_user

    @current_user.setter
    def current_user(self, value):
        self._current_user = value

    def get_login_url(self):
        """Where ``@authenticated`` sends a visitor nobody logged in."""
        return self.application.settings.get("login_url", "/login")

    # -- the response -----------------------------------------------------

    def clear(self):
        """Forget headers and body written so far, back to a plain 200."""
        self._headers = [("content-type", "text/html; charset=UTF-8")]
        self._write_buffer = []
        self._status_code = 200
        self._reason = None

    def set_status(self, status_code, reason=None):
        """The response's status (and phrase)."""
        self._status_code = status_code
        self._reason = reason  # None: the standard phrase, looked up if needed

    def get_status(self):
        return self._status_code

    def set_header(self, name, value):
        """Set header ``name``, replacing any value it had."""
        self.clear_header(name)
        self.add_header(name, value)

    def add_header(self, name, value):
        """Add a value for header ``name``."""
        text = self._header_text(value)
        self._headers.append((name.lower(), text))

    def clear_header(self, name):
        """Remove header ``name``."""
        lower = name.lower()
        self._headers = [(key, value) for key, value in self._headers if key != lower]

    @staticmethod
    def _header_text(value):
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        text = str(value)
        if re.search(r"[\x00-\x1f]", text):
            raise ValueError("unsafe header value %r" % text)
        return text

    def write(self, chunk):
        """Add ``chunk`` to the body: ``str`` (UTF-8), ``bytes``, or a
        ``dict`` written as JSON (with its content type)."""
        if self._finished:
            raise RuntimeError("Cannot write() after finish()")
        if isinstance(chunk, dict):
            chunk = json.dumps(chunk).replace("</", "<\\/")
            self.set_header("Content-Type", "application/json; charset=UTF-8")
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError("write() only accepts bytes, str and dict, not %s" % type(chunk).__name__)
        self._write_buffer.append(bytes(chunk))

    def flush(self, include_footers=False):
        """Send what is written so far (the status and headers with the
        first flush): a streamed response, e.g. server-sent events. Returns
        an awaitable that resolves once the chunk is handed to the host."""
        if self._finished:
            raise RuntimeError("Cannot flush() after finish()")
        chunk = b"".join(self._write_buffer)
        self._write_buffer = []
        if self._flush_hook is None:
            self._write_buffer = [chunk] if chunk else []
            return _Done()
        first = not self._headers_written
        self._headers_written = True
        return self._flush_hook(first, self._status_code, self._all_headers(), chunk)

    def finish(self, chunk=None):
        """End the response, writing ``chunk`` first if given."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        if chunk is not None:
            self.write(chunk)
        if self._status_code in (204, 304) or 100 <= self._status_code < 200:
            self._write_buffer = []
            self.clear_header("content-type")
        self._finished = True

    def redirect(self, url, permanent=False, status=None):
        """Send the client to ``url`` (301 if ``permanent``, else 302)."""
        if status is None:
            status = 301 if permanent else 302
        elif not 300 <= status <= 399:
            raise ValueError("a redirect's status must be 3xx, not %d" % status)
        self.set_status(status)
        # As given, as Tornado does: joining it to the request's URI would
        # turn a request for `//evil.example/x` into an open redirect.
        self.set_header("Location", url)
        self.finish()

    def send_error(self, status_code=500, **kwargs):
        """Answer with an error page (``write_error``) for ``status_code``."""
        if self._finished:
            return
        if self._headers_written:
            # The status is sent already: end the stream where it is.
            app_log.error("Cannot send error %d: the response has started", status_code)
            self._write_buffer = []
            self._finished = True
            return
        self.clear()
        reason = kwargs.get("reason")
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], HTTPError) and exc_info[1].reason:
            reason = exc_info[1].reason
        self.set_status(status_code, reason=reason)
        try:
            self.write_error(status_code, **kwargs)
        except Exception:
            app_log.error("Uncaught exception in write_error", exc_info=True)
        if not self._finished:
            self.finish()

    def write_error(self, status_code, **kwargs):
        """The error page; override for your own. Tracebacks go to the log;
        the client sees one only in debug mode, as in Tornado: the
        ``serve_traceback`` (or ``debug``) setting, or the app's config value
        ``debug = "true"``, which ``squall serve --dev`` sets."""
        if "exc_info" in kwargs and self._serve_traceback():
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("".join(traceback.format_exception(*kwargs["exc_info"])))
            return
        self.finish(
            "<html><title>%(code)d: %(message)s</title>"
            "<body>%(code)d: %(message)s</body></html>"
            % {"code": status_code, "message": _escape(self._reason or http.client.responses.get(status_code, "Unknown"))}
        )

    def _serve_traceback(self):
        settings = self.application.settings
        if "serve_traceback" in settings:  # an explicit setting wins, as in Tornado
            return bool(settings["serve_traceback"])
        if settings.get("debug"):
            return True
        return config_value("debug") == "true"

    # -- arguments --------------------------------------------------------

    def get_argument(self, name, default=_ARG_DEFAULT, strip=True):
        """The last value of argument ``name`` (query or form body); without
        a ``default``, a missing one is ``400 Missing argument NAME``."""
        return self._get_argument(name, default, self.request.arguments, strip)

    def get_arguments(self, name, strip=True):
        """Every value of argument ``name``, query then body."""
        return self._get_arguments(name, self.request.arguments, strip)

    def get_query_argument(self, name, default=_ARG_DEFAULT, strip=True):
        return self._get_argument(name, default, self.request.query_arguments, strip)

    def get_query_arguments(self, name, strip=True):
        return self._get_arguments(name, self.request.query_arguments, strip)

    def get_body_argument(self, name, default=_ARG_DEFAULT, strip=True):
        return self._get_argument(name, default, self.request.body_arguments, strip)

    def get_body_arguments(self, name, strip=True):
        return self._get_arguments(name, self.request.body_arguments, strip)

    def _get_argument(self, name, default, source, strip):
        values = self._get_arguments(name, source, strip)
        if not values:
            if default is _ARG_DEFAULT:
                raise MissingArgumentError(name)
            return default
        return values[-1]

    @staticmethod
    def _get_arguments(name, source, strip):
        return [decode_argument(value, strip) for value in source.get(name, [])]

    # -- cookies ----------------------------------------------------------

    @property
    def cookies(self):
        return self.request.cookies

    def get_cookie(self, name, default=None):
        """The value of the client's cookie ``name``, or ``default``."""
        if name in self.request.cookies:
            return self.request.cookies[name].value
        return default

    def set_cookie(
        self,
        name,
        value,
        domain=None,
        expires=None,
        path="/",
        expires_days=None,
        *,
        max_age=None,
        httponly=False,
        secure=False,
        samesite=None,
    ):
        """Add a ``Set-Cookie`` header."""
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if re.search(r"[\x00-\x20;]", name + value):
            raise ValueError("invalid cookie %r: %r" % (name, value))
        morsel = http.cookies.Morsel()
        morsel.set(name, value, value)
        if domain:
            morsel["domain"] = domain
        if expires_days is not None and not expires:
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=expires_days)
        if expires:
            if hasattr(expires, "timestamp"):
                expires = email.utils.formatdate(expires.timestamp(), usegmt=True)
            morsel["expires"] = expires
        if path:
            morsel["path"] = path
        if max_age is not None:
            morsel["max-age"] = str(max_age)
        if httponly:
            morsel["httponly"] = True
        if secure:
            morsel["secure"] = True
        if samesite:
            morsel["samesite"] = samesite
        # Kept apart from the headers: an error page keeps them, and setting
        # a cookie again replaces it, as in Tornado.
        self._new_cookies = [(key, value) for key, value in self._new_cookies if key != name]
        self._new_cookies.append((name, morsel.OutputString()))

    def clear_cookie(self, name, path="/", domain=None):
        """Tell the client to forget cookie ``name``."""
        self.set_cookie(name, "", path=path, domain=domain, max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT")

    def create_signed_value(self, name, value, version=None):
        """``value`` signed for cookie ``name`` (the Rust SDK's format)."""
        return self.application.signer().sign(name, value)

    def set_signed_cookie(self, name, value, expires_days=30, version=None, **kwargs):
        """Set cookie ``name`` to ``value`` signed with the app's
        ``cookie_secret``: the client can read it but not change it."""
        self.set_cookie(name, self.create_signed_value(name, value), expires_days=expires_days, **kwargs)

    def get_signed_cookie(self, name, value=None, max_age_days=31, min_version=None):
        """The bytes of signed cookie ``name``, or ``None`` if it is absent,
        tampered with, or older than ``max_age_days``."""
        if value is None:
            value = self.get_cookie(name)
        return self.application.signer().verify(name, value, max_age_days)

    set_secure_cookie = set_signed_cookie
    get_secure_cookie = get_signed_cookie

    # -- templates --------------------------------------------------------

    def render(self, template_name, **kwargs):
        """Finish the response with template ``template_name`` rendered."""
        self.finish(self.render_string(template_name, **kwargs))

    def render_string(self, template_name, **kwargs):
        """Template ``template_name`` rendered with ``kwargs`` (bytes)."""
        namespace = self.get_template_namespace()
        namespace.update(kwargs)
        return self.application.template_loader().load(template_name).generate(**namespace)

    def get_template_namespace(self):
        """What every template sees, as in Tornado."""
        loader = self.application.template_loader()

        def included(name, **kwargs):
            namespace = self.get_template_namespace()
            namespace.update(kwargs)
            return loader.load(name).generate(**namespace)

        return {
            "handler": self,
            "request": self.request,
            "current_user": self.current_user,
            "static_url": self.static_url,
            "xsrf_form_html": self.xsrf_form_html,
            "reverse_url": self.reverse_url,
            "Template": included,
        }

    def static_url(self, path, include_version=True):
        """The URL of static file ``path`` (under the ``static_path``
        setting), versioned by its content so browsers may cache it."""
        return self.application.static_url(path, include_version)

    # -- XSRF -------------------------------------------------------------

    @property
    def xsrf_token(self):
        """This request's XSRF token, masked afresh; sets the ``_xsrf``
        cookie if the client has none."""
        if not hasattr(self, "_xsrf_raw"):
            raw = security.unmask_token(self.get_cookie("_xsrf"))
            if raw is None:
                raw = security.new_token()
                self._xsrf_raw = raw
                self.set_cookie("_xsrf", security.mask_token(raw), samesite="Lax")
            self._xsrf_raw = raw
        return security.mask_token(self._xsrf_raw).encode("ascii")

    def xsrf_form_html(self):
        """The hidden ``_xsrf`` field a form posting here needs."""
        token = self.xsrf_token.decode("ascii")
        return '<input type="hidden" name="_xsrf" value="%s"/>' % _escape(token)

    def check_xsrf_cookie(self):
        """403 unless the ``_xsrf`` field (or ``X-XSRFToken`` header) matches
        the ``_xsrf`` cookie."""
        submitted = (
            self.get_argument("_xsrf", None)
            or self.request.headers.get("x-xsrftoken")
            or self.request.headers.get("x-csrftoken")
        )
        if not submitted:
            raise HTTPError(403, "'_xsrf' argument missing from POST")
        cookie = security.unmask_token(self.get_cookie("_xsrf"))
        if cookie is None:
            raise HTTPError(403, "'_xsrf' argument has invalid format")
        if not security.tokens_match(cookie, submitted):
            raise HTTPError(403, "XSRF cookie does not match POST argument")

    # -- urls -------------------------------------------------------------

    def reverse_url(self, name, *args):
        return self.application.reverse_url(name, *args)

    # -- running ----------------------------------------------------------

    async def _execute(self, path_args, path_kwargs):
        try:
            if self.request.method not in self.SUPPORTED_METHODS:
                raise HTTPError(405)
            if path_args:
                self.path_args = [_unquote(arg) for arg in path_args]
            if path_kwargs:
                self.path_kwargs = {key: _unquote(value) for key, value in path_kwargs.items()}
            if self.request.method not in ("GET", "HEAD", "OPTIONS") and self.settings.get("xsrf_cookies"):
                self.check_xsrf_cookie()
            result = self.prepare()
            if result is not None and inspect.isawaitable(result):
                await result
            if self._finished:
                return
            method = getattr(self, self.request.method.lower(), None)
            if method is None or not callable(method):
                raise HTTPError(405)
            result = method(*self.path_args, **self.path_kwargs)
            if result is not None and inspect.isawaitable(result):
                await result
            if not self._finished:
                self.finish()
        except Finish:
            if not self._finished:
                self.finish()
        except Exception as error:
            self._handle_request_exception(error)
        finally:
            try:
                self.on_finish()
            except Exception:
                app_log.error("Uncaught exception in on_finish", exc_info=True)

    def _handle_request_exception(self, error):
        if isinstance(error, HTTPInputError):
            error = HTTPError(400, "%s", str(error))
        if isinstance(error, HTTPError):
            if error.log_message:
                gen_log.warning(
                    "%d %s: %s", error.status_code, self.request.uri, _format(error.log_message, error.args)
                )
            self.send_error(error.status_code, exc_info=(type(error), error, error.__traceback__))
            return
        app_log.error(
            "Uncaught exception %s %s",
            self.request.method,
            self.request.uri,
            exc_info=(type(error), error, error.__traceback__),
        )
        if self._finished:
            return
        self.send_error(500, exc_info=(type(error), error, error.__traceback__))

    def _all_headers(self):
        cookies = [("set-cookie", value) for _, value in self._new_cookies]
        return list(self._headers) + cookies

    def _response_parts(self):
        """Status, header pairs and body, for the host."""
        return self._status_code, self._all_headers(), b"".join(self._write_buffer)


class _Done:
    """An awaitable that is already done."""

    def __await__(self):
        return iter(())


def authenticated(method):
    """Only for a logged-in ``current_user``: others are redirected to the
    login URL (GET, HEAD) or refused with 403."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        if not self.current_user:
            if self.request.method in ("GET", "HEAD"):
                url = self.get_login_url()
                if "?" not in url:
                    url += "?" + urllib.parse.urlencode({"next": self.request.uri})
                self.redirect(url)
                return None
            raise HTTPError(403)
        result = method(self, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return wrapper


class _NotFoundHandler(RequestHandler):
    def prepare(self):
        raise HTTPError(404)


class URLSpec:
    """One route: a regular expression over the path, its handler class,
    the keyword arguments for ``initialize`` and an optional name."""

    def __init__(self, pattern, handler, kwargs=None, name=None):
        if not pattern.endswith("$"):
            pattern += "$"
        self.regex = re.compile(pattern)
        # Looked up at every request: worked out once.
        self.named_groups = bool(self.regex.groupindex)
        self.pattern = pattern
        self.handler_class = handler
        self.kwargs = kwargs or {}
        self.name = name
        self._path, self._group_count = _reverse_template(pattern)

    def reverse(self, *args):
        if self._path is None:
            raise ValueError("cannot reverse the pattern %r" % self.pattern)
        if len(args) != self._group_count:
            raise ValueError("%r takes %d arguments, not %d" % (self.pattern, self._group_count, len(args)))
        if not args:
            return self._path
        quoted = tuple(urllib.parse.quote(str(arg), safe="") for arg in args)
        return self._path % quoted


url = URLSpec


class Application:
    """The routes and settings of an app, Tornado's ``Application``:
    ``Application([(r"/", MainHandler), (r"/items/(\\d+)", ItemHandler,
    {"db": db}, "item")], cookie_secret=..., login_url=...)``."""

    def __init__(self, handlers=None, default_host=None, transforms=None, **settings):
        self.settings = settings
        self.rules = []
        self.named_rules = {}
        for rule in handlers or []:
            self.add_rule(rule)
        # Read now, when the component is built: at run time there are no files.
        self._loader = None
        if settings.get("template_path"):
            self._loader = template.Loader(
                settings["template_path"], autoescape=settings.get("autoescape", "xhtml_escape")
            )
        self._static_versions = {}
        if settings.get("static_path"):
            self._static_versions = _hash_static_files(settings["static_path"])
        self.schedules = {}
        self.jobs = {}
        self.consumers = {}

    def consumer(self, queue, handler=None):
        """Consume ``queue``'s messages with ``handler(batch)`` (a coroutine
        function), a batch at a time, as the manifest's
        ``[[app.NAME.consumer]]`` says. ``batch.messages`` lists them
        (``id``, ``payload``, ``attempt``, ``retry()``). As a decorator:
        ``@application.consumer("emails")``."""
        if handler is None:
            return lambda handler: self.consumer(queue, handler)
        if queue in self.consumers:
            raise ValueError("queue %r has two consumers" % queue)
        self.consumers[queue] = handler
        return handler

    def on_job(self, name, handler=None):
        """Run ``handler(job)`` (a coroutine function) for each job kept
        under ``name`` (``squall.jobs.after``, ``squall.jobs.at``) once it
        is due: Tornado's ``call_later``, kept by the host across restarts.
        ``job.id``, ``job.name``, ``job.payload`` (bytes) and
        ``job.attempt`` describe the run; an exception makes it run again
        later. As a decorator: ``@application.on_job("remind")``."""
        if handler is None:
            return lambda handler: self.on_job(name, handler)
        if name in self.jobs:
            raise ValueError("job %r has two handlers" % name)
        self.jobs[name] = handler
        return handler

    def on_schedule(self, name, handler=None):
        """Run ``handler(tick)`` (a coroutine function) at each tick of the
        manifest's schedule ``name`` (``[[app.NAME.schedule]]``), Tornado's
        ``PeriodicCallback`` with the timing in the manifest. ``tick.name``,
        ``tick.payload`` (bytes) and ``tick.scheduled_at`` (seconds since
        the epoch, the same on every host) describe the tick. As a decorator:
        ``@application.on_schedule("cleanup")``."""
        if handler is None:
            return lambda handler: self.on_schedule(name, handler)
        if name in self.schedules:
            raise ValueError("schedule %r has two handlers" % name)
        self.schedules[name] = handler
        return handler

    def template_loader(self):
        if self._loader is None:
            raise RuntimeError("render() needs the template_path setting")
        return self._loader

    def static_url(self, path, include_version=True):
        prefix = self.settings.get("static_url_prefix", "/static/")
        url = prefix + path.lstrip("/")
        version = self._static_versions.get(path.lstrip("/"))
        if include_version and version:
            url += "?v=" + version
        return url

    def add_rule(self, rule):
        if isinstance(rule, URLSpec):
            spec = rule
        else:
            spec = URLSpec(*rule)
        self.rules.append(spec)
        if spec.name:
            self.named_rules[spec.name] = spec

    def add_handlers(self, host_pattern, host_handlers):
        """Add routes (every host is served: the host pattern is ignored)."""
        for rule in host_handlers:
            self.add_rule(rule)

    def signer(self):
        """The signer of this app's cookies, made at first use."""
        if getattr(self, "_signer", None) is None:
            self._signer = security.Signer.from_settings(self.settings)
        return self._signer

    def reverse_url(self, name, *args):
        """The path of the route named ``name``, with ``args`` in its groups."""
        if name not in self.named_rules:
            raise KeyError("%s not found in named urls" % name)
        return self.named_rules[name].reverse(*args)

    def find_handler(self, request):
        """The route matching the request's path: handler class, its
        ``initialize`` arguments, positional and keyword path arguments."""
        path = request.path
        for spec in self.rules:
            match = spec.regex.match(path)
            if match is None:
                continue
            if spec.named_groups:
                kwargs = {key: value for key, value in match.groupdict().items() if value is not None}
                return spec.handler_class, spec.kwargs, [], kwargs
            groups = match.groups()
            args = [value for value in groups if value is not None] if groups else []
            return spec.handler_class, spec.kwargs, args, {}
        return _NotFoundHandler, {}, [], {}

    async def serve(self, request, flush_hook=None):
        """Run the matching handler for ``request``; its status, headers and
        body (what is left of it after any ``flush``, sent by ``flush_hook``)."""
        handler_class, kwargs, args, path_kwargs = self.find_handler(request)
        try:
            handler = handler_class(self, request, **kwargs)
        except Exception:
            app_log.error("Cannot create %s", handler_class.__name__, exc_info=True)
            return 500, [("content-type", "text/plain; charset=UTF-8")], b"500: Internal Server Error"
        handler._flush_hook = flush_hook
        await handler._execute(args, path_kwargs)
        return handler._response_parts()


def _hash_static_files(root):
    """``relative path -> short content hash`` for the files under ``root``."""
    versions = {}
    for directory, _, files in os.walk(root):
        for file in files:
            path = os.path.join(directory, file)
            with open(path, "rb") as content:
                digest = hashlib.sha256(content.read()).hexdigest()[:12]
            versions[os.path.relpath(path, root).replace(os.sep, "/")] = digest
    return versions


def _format(message, args):
    """``message % args`` if there are args and they fit, else as it is (a
    literal ``%`` in a message must not turn a 404 into a 500)."""
    if not args:
        return message
    try:
        return message % args
    except (TypeError, ValueError):
        return "%s %r" % (message, args)


def _unquote(value):
    return urllib.parse.unquote(value) if isinstance(value, str) else value


def _escape(text):
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _reverse_template(pattern):
    """``/items/(\\d+)$`` → (``/items/%s``, 1); ``(None, 0)`` if the
    pattern is not a plain path with top-level groups."""
    body = pattern[1:] if pattern.startswith("^") else pattern
    body = body[:-1] if body.endswith("$") else body
    pieces = []
    groups = 0
    depth = 0
    index = 0
    while index < len(body):
        char = body[index]
        index += 1
        if char == "(":
            if depth == 0:
                pieces.append("%s")
                groups += 1
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth > 0:
            if char == "\\":
                index += 1
        elif char == "\\" and index < len(body) and not body[index].isalnum():
            pieces.append(body[index].replace("%", "%%"))
            index += 1
        elif char in "\\.*+?[]{}|^$":
            return None, 0
        else:
            pieces.append(char.replace("%", "%%"))
    if depth != 0:
        return None, 0
    return "".join(pieces), groups
