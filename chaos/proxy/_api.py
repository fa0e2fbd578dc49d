"""Toxiproxy 2.x's HTTP API over a ProxyCollection: routes, JSON in, JSON out.

The routes are a table; each handler turns a request into collection calls. Bodies are
checked the way Toxiproxy's JSON decoding checks them: unknown fields are ignored, a field
of the wrong JSON type is a 400 ``bad request body``, a missing one takes its default.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from chaos.proxy._collection import PopulateError, ProxyCollection, ProxySpec
from chaos.proxy._errors import BAD_REQUEST_BODY, INVALID_STREAM, INVALID_TOXIC_TYPE, TOXIC_EXISTS, ApiError
from chaos.proxy._http import Request, Response
from sim.faults.toxics import TOXIC_TYPES, Toxic

VERSION = "2.12.0"

Handler = Callable[["Api", Request, dict[str, str]], Awaitable[Response]]

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python would take NaN and Infinity; Go's decoder does not


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def _decode(body: bytes) -> Any:
    """The first JSON value of the body; like Go's json.Decoder, what follows it is not read."""
    if not body.strip():
        raise BAD_REQUEST_BODY.joined("EOF")
    try:
        return _DECODER.raw_decode(body.decode("utf-8").strip())[0]
    except RecursionError:
        # Go's decoder stops at 10000 levels; Python's stack well before. Either way: a bad body.
        raise BAD_REQUEST_BODY.joined("JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BAD_REQUEST_BODY.joined(f"invalid JSON: {exc}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BAD_REQUEST_BODY.joined(f"{what} must be a JSON object, got {_json_type(value)}")
    return value


def _field(obj: dict[str, Any], key: str, kinds: tuple[type, ...], want: str) -> Any:
    """``obj[key]`` if present and of the right JSON type; None when absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        raise BAD_REQUEST_BODY.joined(f"{key} must be a JSON {want}, got {_json_type(value)}")
    return value


def _validation(exc: ValidationError) -> ApiError:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"])
    return BAD_REQUEST_BODY.joined(f"{where}: {err['msg']}" if where else err["msg"])


def _spec(obj: dict[str, Any]) -> ProxySpec:
    enabled = _field(obj, "enabled", (bool,), "boolean")
    return ProxySpec(
        name=_field(obj, "name", (str,), "string") or "",
        upstream=_field(obj, "upstream", (str,), "string") or "",
        listen=_field(obj, "listen", (str,), "string") or "",  # bound on loopback, reported "" until then
        enabled=True if enabled is None else enabled,
    )


def _compact(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _ok(status: int, doc: object) -> Response:
    """A success as Toxiproxy writes it: compact JSON, no newline."""
    return Response(status, _compact(doc))


def _refused(exc: ApiError) -> Response:
    """An error as Toxiproxy writes it (Go's http.Error): JSON sent as text/plain, with a newline."""
    return Response(
        exc.status, _compact(exc.to_json()) + b"\n", "text/plain; charset=utf-8", [("X-Content-Type-Options", "nosniff")]
    )


def _populated(status: int, proxies: list[Any], exc: ApiError | None = None) -> Response:
    """/populate answers JSON either way, the error (if any) beside the proxies it did create (null if none)."""
    doc = {**(exc.to_json() if exc else {}), "proxies": [p.to_json() for p in proxies] or None}
    return Response(status, _compact(doc))


def _no_content() -> Response:
    return Response(204, b"", content_type=None)


class Api:
    """The request handler of one server (its proxies, its metrics registry)."""

    def __init__(self, proxies: ProxyCollection, registry: CollectorRegistry) -> None:
        self.proxies = proxies
        self.registry = registry

    async def __call__(self, request: Request) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            # A browser page could otherwise drive the API by cross-site requests.
            return Response(403, b"User agent not allowed\n", content_type="text/plain; charset=utf-8")
        route = _match(request.segments())
        if route is None:  # Go's router: its plain-text page, before any handler (so no request id)
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8", [("X-Content-Type-Options", "nosniff")])
        methods, params = route
        handler = methods.get(request.method)
        if handler is None:  # Go's router: a bare 405 (HEAD included), no body, no Allow header
            return Response(405, b"", content_type=None)
        response = await self._handle(handler, request, params)
        response.headers.append(("X-Toxiproxy-Request-Id", uuid.uuid4().hex[:20]))
        return response

    async def _handle(self, handler: Handler, request: Request, params: dict[str, str]) -> Response:
        try:
            return await handler(self, request, params)
        except PopulateError as exc:
            return _populated(exc.status, exc.proxies, exc)
        except ApiError as exc:
            if handler is Api.populate:
                return _populated(exc.status, [], exc)
            return _refused(exc)

    # -- proxies ----------------------------------------------------------------------------------

    async def proxy_index(self, request: Request, params: dict[str, str]) -> Response:
        return _ok(200, {name: p.to_json() for name, p in self.proxies.all().items()})

    async def proxy_create(self, request: Request, params: dict[str, str]) -> Response:
        spec = _spec(_object(_decode(request.body), "the proxy"))
        proxy = await self.proxies.create(spec)
        return _ok(201, proxy.to_json())

    async def populate(self, request: Request, params: dict[str, str]) -> Response:
        doc = _decode(request.body)
        if doc is None:
            doc = []  # Go decodes null into an empty list
        if not isinstance(doc, list):
            raise BAD_REQUEST_BODY.joined(f"populate takes a JSON array of proxies, got {_json_type(doc)}")
        specs = [_spec(_object(item, f"proxy {i}")) for i, item in enumerate(doc, start=1)]
        return _populated(201, await self.proxies.populate(specs))

    async def proxy_show(self, request: Request, params: dict[str, str]) -> Response:
        return _ok(200, self.proxies.get(params["proxy"]).to_json())

    async def proxy_update(self, request: Request, params: dict[str, str]) -> Response:
        self.proxies.get(params["proxy"])
        obj = _object(_decode(request.body), "the proxy")
        _field(obj, "name", (str,), "string")  # Toxiproxy decodes the whole proxy, renaming nothing
        proxy = await self.proxies.update(
            params["proxy"],
            listen=_field(obj, "listen", (str,), "string"),
            upstream=_field(obj, "upstream", (str,), "string"),
            enabled=_field(obj, "enabled", (bool,), "boolean"),
        )
        return _ok(200, proxy.to_json())

    async def proxy_delete(self, request: Request, params: dict[str, str]) -> Response:
        await self.proxies.delete(params["proxy"])
        return _no_content()

    async def reset(self, request: Request, params: dict[str, str]) -> Response:
        await self.proxies.reset()
        return _no_content()

    # -- toxics -----------------------------------------------------------------------------------

    async def toxic_index(self, request: Request, params: dict[str, str]) -> Response:
        proxy = self.proxies.get(params["proxy"])
        return _ok(200, [t.to_json() for t in proxy.toxics()])

    async def toxic_create(self, request: Request, params: dict[str, str]) -> Response:
        proxy = self.proxies.get(params["proxy"])
        obj = _object(_decode(request.body), "the toxic")
        name = _field(obj, "name", (str,), "string") or ""
        kind = _field(obj, "type", (str,), "string") or ""
        stream = _field(obj, "stream", (str,), "string")
        toxicity = _field(obj, "toxicity", (int, float), "number")
        attributes = _field(obj, "attributes", (dict,), "object")
        stream = "downstream" if stream is None else stream  # kept as written: Toxiproxy lowers it only to act
        if stream.lower() not in ("upstream", "downstream"):
            raise INVALID_STREAM
        name = name or f"{kind}_{stream}"
        if kind not in TOXIC_TYPES:
            raise INVALID_TOXIC_TYPE
        if any(t.name == name for t in proxy.toxics()):
            raise TOXIC_EXISTS
        doc = {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes}
        try:
            toxic = Toxic.model_validate(doc)
        except ValidationError as exc:
            raise _validation(exc) from None
        return _ok(200, proxy.add_toxic(toxic).to_json())

    async def toxic_show(self, request: Request, params: dict[str, str]) -> Response:
        proxy = self.proxies.get(params["proxy"])
        return _ok(200, proxy.toxic(params["toxic"]).to_json())

    async def toxic_update(self, request: Request, params: dict[str, str]) -> Response:
        proxy = self.proxies.get(params["proxy"])
        proxy.toxic(params["toxic"])
        obj = _object(_decode(request.body), "the toxic")
        patch = {
            key: value
            for key, value in (
                ("toxicity", _field(obj, "toxicity", (int, float), "number")),
                ("attributes", _field(obj, "attributes", (dict,), "object")),
            )
            if value is not None
        }
        try:
            toxic = proxy.update_toxic(params["toxic"], patch)
        except ValidationError as exc:
            raise _validation(exc) from None
        return _ok(200, toxic.to_json())

    async def toxic_delete(self, request: Request, params: dict[str, str]) -> Response:
        self.proxies.get(params["proxy"]).remove_toxic(params["toxic"])
        return _no_content()

    # -- server -----------------------------------------------------------------------------------

    async def version(self, request: Request, params: dict[str, str]) -> Response:
        body = json.dumps({"version": VERSION}).encode() + b"\n"
        return Response(200, body, content_type="application/json;charset=utf-8")

    async def metrics(self, request: Request, params: dict[str, str]) -> Response:
        return Response(200, generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)


# Path pattern (``{name}`` captures a segment) -> method -> handler.
ROUTES: list[tuple[tuple[str, ...], dict[str, Handler]]] = [
    (("reset",), {"POST": Api.reset}),
    (("proxies",), {"GET": Api.proxy_index, "POST": Api.proxy_create}),
    (("populate",), {"POST": Api.populate}),
    (
        ("proxies", "{proxy}"),
        {"GET": Api.proxy_show, "POST": Api.proxy_update, "PATCH": Api.proxy_update, "DELETE": Api.proxy_delete},
    ),
    (("proxies", "{proxy}", "toxics"), {"GET": Api.toxic_index, "POST": Api.toxic_create}),
    (
        ("proxies", "{proxy}", "toxics", "{toxic}"),
        {"GET": Api.toxic_show, "POST": Api.toxic_update, "PATCH": Api.toxic_update, "DELETE": Api.toxic_delete},
    ),
    (("version",), {"GET": Api.version}),
    (("metrics",), {"GET": Api.metrics}),
]


def _match(segments: list[str]) -> tuple[dict[str, Handler], dict[str, str]] | None:
    for pattern, methods in ROUTES:
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, segments):
            if want.startswith("{"):
                if not got:
                    break
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return methods, params
    return None
