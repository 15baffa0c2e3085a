"""The request as a handler sees it: headers, arguments, cookies, body
(Tornado's ``tornado.httputil``)."""

import email.parser
import email.policy
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


def parse_multipart(content_type, body, arguments, files):
    """Fill ``arguments`` and ``files`` from a ``multipart/form-data`` body."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files.setdefault(name, []).append(
                HTTPFile(
                    filename=filename,
                    body=payload,
                    content_type=part.get_content_type(),
                )
            )
        else:
            arguments.setdefault(name, []).append(payload)


class HTTPServerRequest:
    """One request: ``method``, ``uri``, ``path``, ``query``, ``headers``,
    ``body`` and the arguments, files and cookies parsed from them."""

    def __init__(self, method, path, query, headers, body, host):
        self.method = method
        self.path = path
        self.query = query
        self.uri = path + ("?" + query if query else "")
        self.version = "HTTP/1.1"
        self.headers = headers
        self.body = body
        self.host = host or headers.get("host", "127.0.0.1")
        if self.host.startswith("["):
            self.host_name = self.host.split("]")[0] + "]"
        else:
            self.host_name = self.host.split(":")[0]
        self.remote_ip = headers.get("squall-client-addr")
        self.protocol = "http"
        self.query_arguments = parse_qs_bytes(query)
        self.body_arguments = {}
        self.files = {}
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            text = body.decode("utf-8", errors="replace")
            self.body_arguments = parse_qs_bytes(text)
        elif content_type.startswith("multipart/form-data"):
            parse_multipart(content_type, body, self.body_arguments, self.files)
        self.arguments = {}
        for source in (self.query_arguments, self.body_arguments):
            for name, values in source.items():
                self.arguments.setdefault(name, []).extend(values)
        self._cookies = None

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
