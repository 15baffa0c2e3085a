"""The request as a handler sees it: headers, arguments, cookies, body
(Tornado's ``tornado.httputil``)."""

import functools
import http.cookies
import re
import urllib.parse

# Tornado strips these from argument values (all but tab, newline, CR).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f]")


class HTTPHeaders:
    """Header fields by case-insensitive name; a name may repeat."""

    def __init__(self, fields=()):
        self._fields = []
        for name, value in fields:
            self.add(name, value)

    @classmethod
    def from_lowercase(cls, fields):
        """Headers whose names are lower-case text already (the host's)."""
        headers = cls()
        headers._fields = fields
        return headers

    def add(self, name, value):
        """Add a value for ``name``, keeping those it has."""
        self._fields.append((name.lower(), str(value)))

    def get_list(self, name):
        """Every value of ``name``, in order."""
        name = name.lower()
        return [value for key, value in self._fields if key == name]

    def get(self, name, default=None):
        """The values of ``name`` joined by commas, or ``default``."""
        values = self.get_list(name)
        return ",".join(values) if values else default

    def get_all(self):
        """Every ``(name, value)`` pair, in order."""
        return list(self._fields)

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return bool(self.get_list(name))

    def __iter__(self):
        seen = []
        for key, _ in self._fields:
            if key not in seen:
                seen.append(key)
        return iter(seen)

    def __len__(self):
        return len(list(iter(self)))

    def __repr__(self):
        return f"HTTPHeaders({self._fields!r})"


def parse_qs_bytes(text):
    """``name -> [bytes values]`` of a query string or URL-encoded body."""
    if not text:
        return {}
    arguments = {}
    for name, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        arguments.setdefault(name, []).append(value.encode("utf-8"))
    return arguments


class HTTPFile(dict):
    """An uploaded file: ``filename``, ``body`` (bytes), ``content_type``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as missing:
            raise AttributeError(name) from missing


class HTTPInputError(Exception):
    """A request body that cannot be parsed: a ``400 Bad Request``."""


# Bounds on what a multipart body may make the parser do.
MAX_PARTS = 1000
MAX_PART_HEAD = 8 * 1024
_PARAM = re.compile(r';\s*([A-Za-z0-9_.*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def header_params(value):
    """``("form-data", {"name": "x"})`` from ``form-data; name="x"``."""
    value = value[:MAX_PART_HEAD]
    main, _, rest = value.partition(";")
    params = {}
    for name, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[name.lower()] = raw
    return main.strip().lower(), params


def parse_multipart(content_type, body, arguments, files):
    """Fill ``arguments`` and ``files`` from a ``multipart/form-data`` body,
    in one pass over it; ``HTTPInputError`` if it is malformed."""
    _, params = header_params(content_type)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise HTTPInputError("multipart/form-data without a usable boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    end = body.rfind(delimiter + b"--")
    if end < 0:
        raise HTTPInputError("multipart body without its closing boundary")
    parts = body[:end].split(delimiter)
    if len(parts) - 1 > MAX_PARTS:
        raise HTTPInputError("more than %d parts in a multipart body" % MAX_PARTS)
    for part in parts[1:]:
        if not part.startswith(b"\r\n") or not part.endswith(b"\r\n"):
            raise HTTPInputError("a malformed part in a multipart body")
        head_end = part.find(b"\r\n\r\n", 2, 2 + MAX_PART_HEAD)
        if head_end < 0:
            raise HTTPInputError("a multipart part's headers are malformed or too long")
        headers = HTTPHeaders()
        for line in part[2:head_end].decode("utf-8", errors="replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers.add(name.strip(), value.strip())
        disposition, disposition_params = header_params(headers.get("content-disposition", ""))
        name = disposition_params.get("name")
        if disposition != "form-data" or name is None:
            raise HTTPInputError("a multipart part is not form-data with a name")
        value = part[head_end + 4 : -2]
        if "filename" in disposition_params:
            files.setdefault(name, []).append(
                HTTPFile(
                    filename=disposition_params["filename"],
                    body=value,
                    content_type=headers.get("content-type", "application/unknown"),
                )
            )
        else:
            arguments.setdefault(name, []).append(value)


class HTTPServerRequest:
    """One request: ``method``, ``uri``, ``path``, ``query``, ``headers``,
    ``body`` and the arguments, files and cookies parsed from them."""

    def __init__(self, method, path, query, headers, body, host):
        self.method = method
        self.path = path
        self.query = query
        self.version = "HTTP/1.1"
        self.headers = headers
        self.body = body
        self.host = host or headers.get("host", "127.0.0.1")
        self.protocol = "http"
        # What few handlers use is worked out at first use; the body is
        # parsed inside the handler, so a malformed one is that handler's 400.
        self._body_arguments = None
        self._files = None
        self._cookies = None

    # Worked out at first use and kept; code may still assign them, as
    # Tornado's own (a proxy's `X-Real-IP` into `remote_ip`).
    @functools.cached_property
    def uri(self):
        """The path and, if there is one, ``?`` and the query."""
        return self.path + "?" + self.query if self.query else self.path

    @functools.cached_property
    def host_name(self):
        """The host without its port."""
        if self.host.startswith("["):
            return self.host.split("]")[0] + "]"
        return self.host.split(":")[0]

    @functools.cached_property
    def remote_ip(self):
        """The client's address, as the host saw it."""
        return self.headers.get("squall-client-addr")

    @functools.cached_property
    def query_arguments(self):
        """``name -> [bytes]`` of the query."""
        return parse_qs_bytes(self.query)

    def _parse_body(self):
        if self._body_arguments is not None:
            return
        arguments, files = {}, {}
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            arguments = parse_qs_bytes(self.body.decode("utf-8", errors="replace"))
        elif content_type.startswith("multipart/form-data"):
            parse_multipart(content_type, self.body, arguments, files)
        self._body_arguments, self._files = arguments, files

    @property
    def body_arguments(self):
        """``name -> [bytes]`` of a URL-encoded or multipart form body."""
        self._parse_body()
        return self._body_arguments

    @property
    def files(self):
        """``name -> [HTTPFile]`` of a multipart body."""
        self._parse_body()
        return self._files

    @property
    def arguments(self):
        """The query's arguments, then the body's."""
        merged = {}
        for source in (self.query_arguments, self.body_arguments):
            for name, values in source.items():
                merged.setdefault(name, []).extend(values)
        return merged

    @property
    def cookies(self):
        """The request's cookies, a ``http.cookies.SimpleCookie``."""
        if self._cookies is None:
            self._cookies = http.cookies.SimpleCookie()
            for header in self.headers.get_list("cookie"):
                try:
                    self._cookies.load(header)
                except http.cookies.CookieError:
                    pass
        return self._cookies

    def full_url(self):
        """The URL the client asked for."""
        return f"{self.protocol}://{self.host}{self.uri}"

    def __repr__(self):
        return f"HTTPServerRequest(method={self.method!r}, uri={self.uri!r})"


def decode_argument(value, strip=True):
    """An argument's bytes as text, control characters removed."""
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
    text = _CONTROL_CHARS.sub(" ", text)
    return text.strip() if strip else text
