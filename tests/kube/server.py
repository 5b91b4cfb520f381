"""HTTP front of the Kubernetes API model: routes discovery, resource and subresource
URLs to the model's verbs, records every request, streams watches (chunked JSON lines).

Served by a threaded `http.server` on 127.0.0.1; a MODEL, see README.md.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from . import resources
from .api import APPLY_YAML, Api, Options
from .errors import ApiError, not_found
from .resources import ResourceType
from .selectors import field_selector, label_selector

JSON = dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """One request as the model received it (for wire assertions)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    rtype: ResourceType | None
    namespace: str | None
    name: str | None
    subresource: str | None
    kubevirt_verb: str | None = None


SubresourceHandler = Callable[[str, str, str, Any, Options], None]


def parse_route(path: str) -> Route | None:
    """Resource URL → Route; None if it is not a resource URL the model serves."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    if group == resources.SUBRESOURCES:
        if len(rest) == 3 and rest[0] == "virtualmachines" and namespace:
            vm = resources.by_kind("kubevirt.io/v1", "VirtualMachine")
            return Route(vm, namespace, rest[1], None, kubevirt_verb=rest[2])
        return None
    rtype = resources.by_plural(group, version, rest[0])
    if rtype is None or len(rest) > 3:
        return None
    return Route(rtype, namespace, rest[1] if len(rest) > 1 else None,
                 rest[2] if len(rest) > 2 else None)


class Frontend:
    """Dispatch of decoded requests; owned by KubeModel, shared by handler threads."""

    def __init__(self, api: Api, subresource: SubresourceHandler,
                 after_request: Callable[[], None]) -> None:
        self.api = api
        self.subresource = subresource
        self.after_request = after_request
        self.requests: list[Recorded] = []
        self.reachable_503 = False
        self.stopping = threading.Event()
        self.watch_default_timeout = 5.0
        self.compacted_rv = 0
        self.internal_errors: list[str] = []

    def discovery(self, path: str) -> JSON | None:
        parts = [p for p in path.split("/") if p]
        if parts == ["version"]:
            return {"major": "1", "minor": "34", "gitVersion": "v1.34.0-model",
                    "platform": "linux/amd64"}
        if parts == ["api"]:
            return resources.core_versions()
        if parts == ["api", "v1"]:
            return resources.resource_list("", "v1")
        if parts == ["apis"]:
            return resources.group_list()
        if len(parts) == 2 and parts[0] == "apis":
            return resources.group(parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            return resources.resource_list(parts[1], parts[2])
        return None


def _options(method: str, query: dict[str, str], body: Any, user_agent: str) -> Options:
    opts = Options(user_agent=user_agent)
    dry = query.get("dryRun")
    if method == "DELETE" and isinstance(body, dict):  # DeleteOptions (kind optional)
        dry = dry or ",".join(body.get("dryRun") or [])
        opts.propagation_policy = body.get("propagationPolicy")
        opts.preconditions = dict(body.get("preconditions") or {})
    if dry and dry != "All":
        raise ApiError(400, "BadRequest", f'dryRun: Unsupported value: "{dry}": supported '
                       'values: "All"')
    opts.dry_run = dry == "All"
    opts.field_manager = query.get("fieldManager")
    opts.force = query.get("force") in ("true", "1")
    opts.strict_fields = query.get("fieldValidation") == "Strict"
    opts.propagation_policy = query.get("propagationPolicy", opts.propagation_policy)
    return opts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ModelHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # ---- plumbing ----------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        front = self.server.frontend
        self._warnings: list[str] = []
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = _parse_body(raw, content_type)
        front.requests.append(Recorded(method, split.path, query, content_type, body,
                                       {k: v for k, v in self.headers.items()}))
        self._pending: tuple[int, bytes | None] | None = None
        self._streamed = False
        if front.reachable_503:
            self._send(503, ApiError(503, "ServiceUnavailable",
                                     "the server is currently unable to handle the request"
                                     ).status())
            self._flush()
            return
        try:
            self._dispatch(method, split.path, query, raw, content_type, body)
        except ApiError as err:
            self._send(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up (e.g. left a watch early): normal, not a model bug
        except Exception as err:  # a model bug: answer 500 and keep it for the test to see
            front.internal_errors.append(traceback.format_exc())
            self._send(500, ApiError(500, "InternalError", f"model error: {err!r}").status())
        if not self._streamed:
            # The controller reacts before the client hears back, so the next request
            # sees the settled state (no race with the client).
            front.after_request()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._flush()  # a client that hung up is not a model bug either

    def _dispatch(self, method: str, path: str, query: dict[str, str], raw: bytes,
                  content_type: str, body: Any) -> None:
        front = self.server.frontend
        if method == "GET" and (doc := front.discovery(path)) is not None:
            self._send(200, doc)
            return
        route = parse_route(path)
        if route is None or route.rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rtype, ns, name = route.rtype, route.namespace, route.name
        if rtype.namespaced is False and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        opts = _options(method, query, body, self.headers.get("User-Agent") or "")
        self._warnings = opts.warnings  # filled while the request is processed
        if route.kubevirt_verb is not None:
            if method != "PUT":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
            front.subresource(route.kubevirt_verb, ns or "", name or "", body, opts)
            self._send_empty(202)  # virt-api answers 202 Accepted, no body
            return
        if route.subresource not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.subresource == "status" and method != "GET":
            # Status is the controllers' (the model's controller writes it directly).
            raise ApiError(405, "MethodNotAllowed", "the model does not accept status writes")
        api = front.api
        if name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                try:
                    self._watch(rtype, ns, query)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped watching: normal
            elif method == "GET":
                self._send(200, api.list(rtype, ns, query))
            elif method == "POST":
                self._send(200 if opts.dry_run else 201, api.create(rtype, ns, body, opts))
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} on a collection")
            return
        if method == "GET":
            self._send(200, api.get(rtype, ns, name))
        elif method == "PUT":
            self._send(200, api.replace(rtype, ns, name, body, opts))
        elif method == "PATCH":
            existed = _exists(api, rtype, ns, name)
            obj = api.patch(rtype, ns, name, raw, content_type, opts)
            created = content_type == APPLY_YAML and not existed and not opts.dry_run
            self._send(201 if created else 200, obj)
        elif method == "DELETE":
            deleted = api.delete(rtype, ns, name, opts)
            self._send(200, deleted if rtype.group else {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": rtype.plural,
                            "uid": deleted["metadata"]["uid"]}})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def _send(self, code: int, body: JSON) -> None:
        self._pending = (code, json.dumps(body).encode())

    def _send_empty(self, code: int) -> None:
        self._pending = (code, None)

    def _flush(self) -> None:
        if self._pending is None:
            return
        code, data = self._pending
        self.send_response(code)
        if data is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data or b"")))
        for warning in self._warnings:
            escaped = warning.replace('"', '\\"')
            self.send_header("Warning", f'299 - "{escaped}"')
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _chunk(self, payload: JSON) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, rtype: ResourceType, ns: str | None, query: dict[str, str]) -> None:
        """Chunked stream of ADDED/MODIFIED/DELETED events after `resourceVersion` (all
        current objects as ADDED first when it is absent or "0"), until timeoutSeconds."""
        front = self.server.frontend
        store = front.api.store
        labels = label_selector(query.get("labelSelector"))
        fields = field_selector(query.get("fieldSelector"))
        timeout = float(query.get("timeoutSeconds") or front.watch_default_timeout)
        deadline = time.monotonic() + timeout
        since = query.get("resourceVersion") or "0"
        if not since.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}")
        self._streamed = True
        front.after_request()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with store.lock:
            if since == "0":
                cursor = store.rv
                initial = [o for o in store.all_of(rtype, ns) if labels(o) and fields(o)]
            else:
                cursor, initial = int(since), []
                if cursor < front.compacted_rv:
                    self._chunk({"type": "ERROR", "object": ApiError(
                        410, "Expired", f"too old resource version: {cursor} "
                        f"({front.compacted_rv})").status()})
                    self.wfile.write(b"0\r\n\r\n")
                    return
        for obj in initial:
            self._chunk({"type": "ADDED", "object": obj})
        while not front.stopping.is_set():
            with store.lock:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                fresh = [e for e in store.events if e.rv > cursor]
                if not fresh:
                    store.changed.wait(min(remaining, 0.2))
                    continue
                cursor = fresh[-1].rv
            for event in fresh:
                matches = event.rtype == rtype and (
                    ns is None or event.obj["metadata"].get("namespace") == ns)
                if matches and labels(event.obj) and fields(event.obj):
                    self._chunk({"type": event.type, "object": event.obj})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _exists(api: Api, rtype: ResourceType, ns: str | None, name: str) -> bool:
    with api.store.lock:
        return api.store.read(rtype, ns, name) is not None


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    try:
        if content_type == APPLY_YAML:
            return yaml.safe_load(raw.decode())
        return json.loads(raw)
    except (ValueError, yaml.YAMLError):
        return raw.decode(errors="replace")


class ModelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], frontend: Frontend) -> None:
        super().__init__(address, Handler)
        self.frontend = frontend
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self.connections.discard(request)

    def drop_connections(self) -> None:
        """Cut kept-alive client connections (an unreachable server has none)."""
        with self._connections_lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


__all__ = ["Frontend", "ModelHTTPServer", "Recorded", "not_found"]
