"""``python -m userstatus_local.moto_server``: moto's server for the relay, made faster.

The relay's DynamoDB is moto (``userstatus_local.dynamodb``), and with 100 subscribers its calls
were most of a message's latency (docs/performance.md, B3). This runs moto's own WSGI
application, on the same arguments as ``python -m moto.server -H HOST -p PORT``, with six
changes, none of which alters an answer:

* Attribute values are copied, not walked. moto 5.2 serializes an answer by walking the
  service's shape model; an ``AttributeValue`` is a union of ten members, so each attribute of
  each item cost a dozen lookups (14 ms of a 24 ms query of 100 connection rows). A value made
  only of strings, numbers (as strings), booleans, NULL, string and number sets, and maps and
  lists of those is already in its wire form and is copied as is; anything else (binary values,
  or a value moto left in another form) goes through moto's serializer.
  tests/e2e/test_moto_server.py checks the answers are the same as moto's.
* Per-request look-ups are done once: the backend serving a host (moto lists its package
  directory on every request to find it) and each response class's action names.
* It is served by aiohttp with HTTP/1.1 keep-alive, one request at a time (see ``WsgiBridge``).
* Projections of top-level attributes are copied. moto's ``Item.project`` turns the whole
  item into Python values and back once per projected path (3.8 ms of a 14 ms query of 100
  connection rows projecting two attributes). A projection of top-level names whose values are
  strings, booleans, NULL or numbers that boto3's round trip leaves as they are takes those
  values as they are; any other projection (nested paths, list indexes, other types, a number
  such as ``1e3`` that the round trip rewrites) goes through moto's own.
* Scalar values are read without moto's type tests. moto's ``DynamoType.cast_value`` (the
  Python value every comparison, sort and key match reads, twice per comparison) tests a
  value for five container types before it returns a string as it is; a string, binary,
  boolean or number value skips those tests (``cast_value``), anything else goes through
  moto's. A query sorts every item of its table twice and compares each one's key, so this
  was a quarter of a 100-row query's time in moto (9.2 -> 7.0 ms, in process).
* The collector's first generation is collected every 50,000 allocations instead of 700:
  moto copies every item a query touches, and with a few thousand stored messages the
  collections that followed made one query in fifty take over 100 ms (a 100-row query next to
  3,000 messages: p99 119 ms, median 19 ms; with this threshold 30 ms and 17 ms).

Together, measured through boto3 on this 2-core machine: a query of 100 connection rows takes
17 ms instead of 34 (with the projection the broadcaster asks for: 10.2 ms instead of 14.3 with
the first three changes alone), a put 4.4 ms instead of 6.7.
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import io
import sys
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web
from boto3.dynamodb.types import DYNAMODB_CONTEXT
from moto.core import responses, serialize, utils
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from userstatus_local.pinned_internals import Internal, changed

_SCALAR_TYPES: dict[str, type] = {"S": str, "N": str, "BOOL": bool, "NULL": bool}
_STRING_SETS = frozenset({"SS", "NS"})
SERVICES = ("dynamodb", "dynamodbstreams")
GC_FIRST_GENERATION_THRESHOLD = 50_000
# DynamoDB takes requests up to 16 MB (BatchWriteItem).
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def is_wire_form(value: Any) -> bool:
    """Whether ``value`` is an attribute value that JSON-encodes to its own wire form."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    scalar_type = _SCALAR_TYPES.get(kind)
    if scalar_type is not None:
        return type(inner) is scalar_type
    if kind in _STRING_SETS:
        return isinstance(inner, list) and all(type(member) is str for member in inner)
    if kind == "M":
        return isinstance(inner, dict) and all(
            type(name) is str and is_wire_form(member) for name, member in inner.items()
        )
    if kind == "L":
        return isinstance(inner, list) and all(is_wire_form(member) for member in inner)
    return False


class AttributeValueSerializer(serialize.JSONSerializer):
    """moto's JSON serializer, copying attribute values already in wire form."""

    def _serialize(self, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if shape.name == "AttributeValue" and is_wire_form(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        super()._serialize(serialized, value, shape, key)


class MotoChanged(RuntimeError):
    """The installed moto no longer has the internals this module patches."""


# moto internals this module relies on, each with the signature it was written against
# (moto==5.2.5, pinned in requirements.txt). The patches are worth it (B3: a 100-row query in
# 17 ms instead of 34), so a moto upgrade must fail here, saying what changed, not misbehave.
_PATCHED_INTERNALS: tuple[Internal, ...] = (
    (serialize, "SERVICE_SPECIFIC_SERIALIZERS", None),
    (serialize.JSONSerializer, "_serialize", ("self", "serialized", "value", "shape", "key")),
    (serialize.JSONSerializer, "get_serialized_name", ("self", "shape", "default_name")),
    (responses, "method_names_from_class", ("clazz",)),
    (utils, "method_names_from_class", ("clazz",)),
    (DomainDispatcherApplication, "get_backend_for_host", ("self", "host")),
    (Item, "project", ("self", "projection_expressions")),
    (Item, "__init__", ("self", "hash_key", "range_key", "attrs")),
)
_moto_project = Item.project
_moto_cast_value = inspect.getattr_static(DynamoType, "cast_value")
_VALUES_AS_THEY_ARE = frozenset({"S", "B", "BOOL"})
_COPIED_AS_THEY_ARE = frozenset({"S", "BOOL", "NULL"})


def project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """``Item.project``, copying top-level values that moto's round trip leaves unchanged."""
    attrs: dict[str, DynamoType] = {}
    for path in projection_expressions:
        if len(path) != 1 or "[" in path[0]:
            return _moto_project(self, projection_expressions)
        value = self.attrs.get(path[0])
        if value is None:
            continue
        if not (value.type in _COPIED_AS_THEY_ARE or _unchanged_number(value)):
            return _moto_project(self, projection_expressions)
        attrs[path[0]] = value
    return Item(hash_key=self.hash_key, range_key=self.range_key, attrs=attrs)


def cast_value(self: DynamoType) -> Any:
    """``DynamoType.cast_value``, answering scalar types before moto's five container tests."""
    kind = self.type
    if kind in _VALUES_AS_THEY_ARE:
        return self.value
    if kind == "N":
        return Decimal(self.value)
    return _moto_cast_value.fget(self)


def _unchanged_number(value: DynamoType) -> bool:
    """Whether a number reads back as written through boto3's (moto's) round trip."""
    return value.type == "N" and str(DYNAMODB_CONTEXT.create_decimal(value.value)) == value.value


def check_moto_internals() -> None:
    """Raise ``MotoChanged`` naming what is missing or changed in the installed moto."""
    from moto import __version__

    problems = changed(_PATCHED_INTERNALS)
    if not isinstance(_moto_cast_value, property) or _moto_cast_value.fget is None:
        problems.append("moto.dynamodb.models.dynamo_type.DynamoType.cast_value is not a property")
    if not isinstance(getattr(serialize, "SERVICE_SPECIFIC_SERIALIZERS", None), dict):
        problems.append("moto.core.serialize.SERVICE_SPECIFIC_SERIALIZERS is not a dict")
    if problems:
        raise MotoChanged(
            f"userstatus_local.moto_server was written against moto 5.2.5, and moto "
            f"{__version__} changed what it patches: {'; '.join(sorted(set(problems)))}. "
            "Update the patches (and measure them again with B3) or pin moto back."
        )


def install() -> None:
    """Use ``AttributeValueSerializer`` for DynamoDB and DynamoDB Streams answers, look up
    each response class's action names once instead of on every request, copy top-level
    projections (``project``) and read scalar values directly (``cast_value``)."""
    check_moto_internals()
    for service in SERVICES:
        serialize.SERVICE_SPECIFIC_SERIALIZERS[service] = {"json": AttributeValueSerializer}
    responses.method_names_from_class = functools.cache(utils.method_names_from_class)  # type: ignore[attr-defined]
    Item.project = project  # type: ignore[method-assign]
    DynamoType.cast_value = property(cast_value)  # type: ignore[method-assign, assignment]


class CachingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host.

    moto lists its package directory (about 170 stat calls) on every request to find it.
    """

    def __init__(self, create_app: Callable[[Any], Any]) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        """The backend for ``host`` (called under the dispatcher's lock)."""
        if host not in self._backends:
            self._backends[host] = super().get_backend_for_host(host)
        return self._backends[host]


class WsgiBridge:
    """Serves a WSGI application from aiohttp, one request at a time, with HTTP/1.1 keep-alive.

    werkzeug's development server (moto's own) closes the connection after each answer and
    starts a thread per connection. moto's calls are CPU work under one GIL, so threads
    bought no throughput: served in turn on the event loop, a call costs about 1 ms less.
    A long call (a scan of thousands of items) holds up the ones behind it.
    """

    def __init__(self, application: Callable[..., Iterable[bytes]]) -> None:
        self._application = application

    async def handle(self, request: web.Request) -> web.Response:
        """One request through the WSGI application."""
        body = await request.read()
        environ = wsgi_environ(request, body)
        status, headers, payload = self._call(environ)
        code, _, reason = status.partition(" ")
        answer = web.Response(status=int(code), reason=reason or None, body=payload)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP_HEADERS:
                answer.headers.add(name, value)
        return answer

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[tuple[str, list[tuple[str, str]]]] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            started[:] = [(status, headers)]
            return chunks.append

        result = self._application(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started[0]
        return status, headers, b"".join(chunks)


_HOP_BY_HOP_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


def wsgi_environ(request: web.Request, body: bytes) -> dict[str, Any]:
    """The PEP 3333 environ of an aiohttp request, as werkzeug's server builds it."""
    raw_path, _, query = request.raw_path.partition("?")
    host = request.host or ""
    name, separator, port = host.rpartition(":")
    if not separator or not port.isdigit():
        name, port = host, "80"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": request.raw_path,
        "RAW_URI": request.raw_path,
        "CONTENT_TYPE": request.headers.get("Content-Type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": name,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "REMOTE_ADDR": request.remote or "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            continue
        key = "HTTP_" + key
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def main(argv: list[str] | None = None) -> None:
    """Serve moto on ``-H HOST -p PORT`` until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m userstatus_local.moto_server")
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port to listen on")
    args = parser.parse_args(argv)
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, 10, 10)
    install()
    bridge = WsgiBridge(CachingDispatcher(create_backend_app))
    application = web.Application(client_max_size=MAX_REQUEST_BYTES)
    application.router.add_route("*", "/{path:.*}", bridge.handle)
    web.run_app(application, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
