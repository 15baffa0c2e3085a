"""Templates in Tornado's syntax (``tornado.template``), compiled to Python.

``{{ expr }}`` (escaped unless ``{% autoescape None %}`` or ``{% raw expr %}``),
``{% if %}``/``{% elif %}``/``{% else %}``, ``{% for %}``, ``{% while %}``,
``{% try %}``/``{% except %}``/``{% finally %}``, each closed by ``{% end %}``;
``{% set x = ... %}``, ``{% include "file" %}``, ``{% extends "base" %}`` with
``{% block name %}``, ``{% module expr %}`` (unescaped), ``{# comment #}``.
A ``Loader`` reads a directory's templates when the app is built (there is
no filesystem when it runs) and compiles each at first use.
"""

import html
import json
import os
import re
import urllib.parse

_BLOCK_OPENERS = ("if", "for", "while", "try", "with", "block", "apply")
_INTERMEDIATE = {"else": ("if", "for", "while", "try"), "elif": ("if",), "except": ("try",), "finally": ("try",)}
_TAG = re.compile(r"{{|{%|{#")
_URL = re.compile(r"""\b((?:https?://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)])""")


class ParseError(Exception):
    """A template that cannot be compiled, naming the file and line."""


def xhtml_escape(value):
    return html.escape(_text(value), quote=True).replace("&#x27;", "&#39;")


def url_escape(value, plus=True):
    quote = urllib.parse.quote_plus if plus else urllib.parse.quote
    return quote(_text(value))


def json_encode(value):
    return json.dumps(value).replace("</", "<\\/")


def squeeze(value):
    return re.sub(r"[\x00-\x20]+", " ", value).strip()


def linkify(text):
    """``text`` escaped, its URLs made links."""

    def link(match):
        url = match.group(1)
        href = url if "://" in url else "http://" + url
        return '<a href="%s">%s</a>' % (html.escape(href, quote=True), html.escape(url))

    escaped_parts = []
    last = 0
    source = _text(text)
    for match in _URL.finditer(source):
        escaped_parts.append(html.escape(source[last : match.start()]))
        escaped_parts.append(link(match))
        last = match.end()
    escaped_parts.append(html.escape(source[last:]))
    return "".join(escaped_parts)


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value if isinstance(value, str) else str(value)


def _utf8(value):
    if isinstance(value, bytes):
        return value
    return _text(value).encode("utf-8")


class _Writer:
    def __init__(self):
        self.lines = []
        self.indent = 1
        self.apply_count = 0

    def line(self, code):
        self.lines.append("    " * self.indent + code)


class Template:
    """One compiled template; ``generate(**namespace)`` returns its bytes."""

    def __init__(self, source, name="<string>", loader=None, autoescape="xhtml_escape"):
        self.name = name
        self.loader = loader
        self.autoescape = autoescape
        self.nodes = _parse(_text(source), name)
        self.parent = next((node[1] for node in self.nodes if node[0] == "extends"), None)
        # `{% autoescape %}` sets the mode of its own file only, as in Tornado.
        for node in self.nodes:
            if node[0] == "autoescape":
                self.autoescape = None if node[1] == "None" else node[1]

    def blocks(self):
        """This template's named blocks, and those of what it includes."""
        found = {}
        _collect_blocks(self.nodes, found)
        return found

    def generate(self, **namespace):
        namespace.setdefault("escape", xhtml_escape)
        namespace.setdefault("xhtml_escape", xhtml_escape)
        namespace.setdefault("url_escape", url_escape)
        namespace.setdefault("json_encode", json_encode)
        namespace.setdefault("squeeze", squeeze)
        namespace.setdefault("linkify", linkify)
        namespace.setdefault("_", lambda message, *args, **kwargs: message)
        namespace["_tt_utf8"] = _utf8
        namespace["_tt_text"] = _text
        exec(self._code(), namespace)
        return namespace["_tt_execute"]()

    def _code(self):
        """The compiled template (its parents' too), made at first use."""
        if getattr(self, "_compiled", None) is not None:
            return self._compiled
        template = self
        # A block is compiled with the autoescape of the file that wrote it.
        blocks = {}
        while template.parent is not None:
            for name, body in template.blocks().items():
                blocks.setdefault(name, (body, template.autoescape))
            template = self._load(template.parent)
        for name, body in template.blocks().items():
            blocks.setdefault(name, (body, template.autoescape))
        writer = _Writer()
        self._compile(template.nodes, writer, blocks, template.autoescape)
        code = "def _tt_execute():\n    _tt_buffer = []\n    _tt_append = _tt_buffer.append\n"
        code += "\n".join(writer.lines) + "\n    return b''.join(_tt_buffer)\n"
        try:
            self._compiled = compile(code, "<template %s>" % self.name, "exec")
        except SyntaxError as error:
            raise ParseError("%s: cannot compile: %s" % (self.name, error)) from error
        return self._compiled

    def _load(self, name):
        if self.loader is None:
            raise ParseError("%s: {%% extends %%} or {%% include %%} needs a loader" % self.name)
        return self.loader.load(name)

    def _compile(self, nodes, writer, blocks, autoescape):
        for node in nodes:
            kind = node[0]
            if kind == "text":
                if node[1]:
                    writer.line("_tt_append(%r)" % node[1].encode("utf-8"))
            elif kind == "expr":
                if autoescape:
                    writer.line("_tt_append(_tt_utf8(%s(%s)))" % (autoescape, node[1]))
                else:
                    writer.line("_tt_append(_tt_utf8(%s))" % node[1])
            elif kind in ("raw", "module"):
                writer.line("_tt_append(_tt_utf8(%s))" % node[1])
            elif kind == "autoescape":
                continue
            elif kind == "set":
                writer.line(node[1])
            elif kind == "extends":
                continue
            elif kind == "include":
                included = self._load(node[1])
                self._compile(included.nodes, writer, blocks, included.autoescape)
            elif kind == "block":
                body, owner_autoescape = blocks.get(node[1], (node[2], autoescape))
                self._compile(body, writer, blocks, owner_autoescape)
            elif kind == "apply":
                writer.apply_count += 1
                function = "_tt_apply%d" % writer.apply_count
                writer.line("def %s():" % function)
                writer.indent += 1
                writer.line("_tt_buffer = []")
                writer.line("_tt_append = _tt_buffer.append")
                self._compile(node[2], writer, blocks, autoescape)
                writer.line("return b''.join(_tt_buffer)")
                writer.indent -= 1
                writer.line("_tt_append(_tt_utf8(%s(_tt_text(%s()))))" % (node[1], function))
            elif kind == "control":
                for header, body in node[1]:
                    writer.line(header + ":")
                    writer.indent += 1
                    writer.line("pass")
                    self._compile(body, writer, blocks, autoescape)
                    writer.indent -= 1


def _collect_blocks(nodes, found):
    for node in nodes:
        if node[0] == "block":
            found.setdefault(node[1], node[2])
            _collect_blocks(node[2], found)
        elif node[0] == "control":
            for _, body in node[1]:
                _collect_blocks(body, found)


def _parse(source, name):
    """The template as a tree of nodes."""
    root = []
    # (opener keyword, its clauses [(header, body)], line) for open blocks.
    stack = []
    current = root
    position = 0
    while True:
        match = _TAG.search(source, position)
        if match is None:
            current.append(("text", source[position:]))
            break
        current.append(("text", source[position : match.start()]))
        opener = match.group()
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
        end = source.find(closer, match.end())
        line = source.count("\n", 0, match.start()) + 1
        if end < 0:
            raise ParseError("%s line %d: %s is not closed by %s" % (name, line, opener, closer))
        inside = source[match.end() : end].strip()
        position = end + len(closer)
        if opener == "{#":
            continue
        if opener == "{{":
            if not inside:
                raise ParseError("%s line %d: empty expression" % (name, line))
            current.append(("expr", inside))
            continue
        keyword, _, rest = inside.partition(" ")
        rest = rest.strip()
        if keyword == "end":
            if not stack:
                raise ParseError("%s line %d: {%% end %%} closes nothing" % (name, line))
            opened, clauses, _ = stack.pop()
            current = stack[-1][1][-1][1] if stack else root
            if opened == "block":
                current.append(("block", clauses[0][0], clauses[0][1]))
            elif opened == "apply":
                current.append(("apply", clauses[0][0][len("apply") :].strip(), clauses[0][1]))
            else:
                current.append(("control", clauses))
        elif keyword in _INTERMEDIATE:
            if not stack or stack[-1][0] not in _INTERMEDIATE[keyword]:
                raise ParseError("%s line %d: {%% %s %%} outside its block" % (name, line, keyword))
            body = []
            stack[-1][1].append((inside, body))
            current = body
        elif keyword in _BLOCK_OPENERS:
            body = []
            header = rest if keyword == "block" else inside
            stack.append((keyword, [(header, body)], line))
            current = body
        elif keyword == "set":
            current.append(("set", rest))
        elif keyword in ("include", "extends"):
            current.append((keyword, _string_literal(rest, name, line)))
        elif keyword == "raw":
            current.append(("raw", rest))
        elif keyword == "module":
            current.append(("module", rest))
        elif keyword == "autoescape":
            current.append(("autoescape", rest))
        elif keyword in ("comment", "whitespace"):
            continue
        elif keyword in ("import", "from"):
            current.append(("set", inside))
        else:
            raise ParseError("%s line %d: unknown directive {%% %s %%}" % (name, line, keyword))
    if stack:
        raise ParseError("%s line %d: {%% %s %%} is never closed by {%% end %%}" % (name, stack[-1][2], stack[-1][0]))
    return root


def _string_literal(text, name, line):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    raise ParseError("%s line %d: expected a quoted template name, not %r" % (name, line, text))


class Loader:
    """The templates under ``root``, read now (at build time) and compiled
    at first use."""

    def __init__(self, root, autoescape="xhtml_escape"):
        self.root = root
        self.autoescape = autoescape
        self.sources = {}
        self.templates = {}
        for directory, _, files in os.walk(root):
            for file in files:
                path = os.path.join(directory, file)
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                with open(path, "rb") as source:
                    self.sources[relative] = source.read()

    def load(self, name):
        if name not in self.templates:
            if name not in self.sources:
                raise ParseError("no template %r in %s" % (name, self.root))
            self.templates[name] = Template(self.sources[name], name, self, self.autoescape)
        return self.templates[name]
