"""The Kubernetes API, through the `kubernetes` client's ApiClient: one request per call.

Connection: the kubeconfig (KUBECONFIG, else ~/.kube/config, the client's own loader)
with the Cluster object's `spec.kubevirt.context`, or the pod's service account
(`inCluster: true`). Only this module and the backend's opener path import
`kubernetes`, so planning and `virtsync --help` never load it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from reconciler.backends.base import BackendError
from reconciler.backends.kubevirt.fieldset import conflict_text
from reconciler.backends.kubevirt.ownership import MANAGER
from reconciler.backends.kubevirt.resources import Resource
from reconciler.core.model import JSON

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = (10, 60)  # connect, read (seconds)


_config: Any = k8s_config  # the loader has no type hints


class NotFound(BackendError):
    """404: the object does not exist."""


class Conflict(BackendError):
    """409: an apply conflict (another field manager owns a field) or a stale write."""


class Expired(BackendError):
    """410 on a watch: the resourceVersion is too old."""


class Unreachable(BackendError):
    """The API server did not answer (connection refused, DNS, TLS, timeout)."""


@dataclass(frozen=True)
class Target:
    """Where to connect: a kubeconfig context ('' the current one) or in-cluster."""

    context: str = ""
    in_cluster: bool = False


def connect(target: Target) -> k8s.ApiClient:
    try:
        if target.in_cluster:
            configuration = k8s.Configuration()
            _config.load_incluster_config(client_configuration=configuration)
            return k8s.ApiClient(configuration)
        # KUBECONFIG read now, not when `kubernetes` was imported (it may be a list).
        return cast(k8s.ApiClient, _config.new_client_from_config(
            config_file=os.environ.get("KUBECONFIG") or None, context=target.context or None))
    except (ConfigException, OSError, ValueError) as exc:
        where = "in-cluster config" if target.in_cluster else \
            f"kubeconfig context {target.context!r}" if target.context else "kubeconfig"
        raise BackendError(f"kubevirt: cannot load the {where}: {exc}") from exc


class KubeClient:
    """JSON in, JSON out; HTTP errors become BackendErrors that say what failed."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api: Any = api  # the generated client is only partly typed

    def close(self) -> None:
        self.api.close()

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def request(self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (),
                body: JSON | None = None, content_type: str = "application/json",
                what: str = "") -> dict[str, JSON]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        verb, url, headers, data, _post = self.api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body,
            auth_settings=["BearerToken"])
        label = what or f"{method} {path}"
        try:
            response = self.api.call_api(verb, url, headers, data, _request_timeout=TIMEOUT)
            raw = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"{label}: the Kubernetes API at {self.server} is not "
                              f"reachable: {exc}") from exc
        except k8s.ApiException as exc:
            raise Unreachable(f"{label}: {exc.reason}") from exc
        parsed = _json(raw)
        if 200 <= response.status < 300:
            return parsed
        raise _error(response.status, parsed, label)

    def watch(self, r: Resource, namespace: str, name: str, *, resource_version: str,
              timeout: int) -> Iterator[tuple[str, dict[str, JSON]]]:
        """(type, object) events of one object after `resource_version`, until the
        server ends the watch (`timeoutSeconds`). A 410 (the version is too old) raises
        Expired: read the object again and watch from there."""
        query = [("watch", "true"), ("fieldSelector", f"metadata.name={name}"),
                 ("timeoutSeconds", str(timeout)), ("allowWatchBookmarks", "false")]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        verb, url, headers, _data, _post = self.api.param_serialize(
            "GET", r.path(namespace), query_params=query,
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"])
        label = f"watching {r.kind} {_where(namespace, name)}"
        try:
            response = self.api.call_api(verb, url, headers, None,
                                         _request_timeout=(TIMEOUT[0], timeout + TIMEOUT[1]))
            if response.status != 200:
                raise _error(response.status, _json(response.read()), label)
            yield from _events(response.response.stream(4096), label)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"{label}: the Kubernetes API at {self.server} is not "
                              f"reachable: {exc}") from exc

    # -- the verbs the backend uses ------------------------------------------------

    def get(self, r: Resource, namespace: str, name: str) -> dict[str, JSON] | None:
        try:
            return self.request("GET", r.path(namespace, name), what=f"reading {r.kind} "
                                f"{_where(namespace, name)}")
        except NotFound:
            return None

    def list(self, r: Resource, namespace: str = "", *,
             label_selector: str = "") -> list[dict[str, JSON]]:
        query = [("labelSelector", label_selector)] if label_selector else []
        data = self.request("GET", r.path(namespace), query=query,
                            what=f"listing {r.plural} in {namespace or 'all namespaces'}")
        items = data.get("items")
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                item.setdefault("apiVersion", r.api_version)
                item.setdefault("kind", r.kind)
                out.append(item)
        return out

    def apply(self, r: Resource, namespace: str, name: str, body: Mapping[str, JSON], *,
              force: bool = False, dry_run: bool = False,
              manager: str = MANAGER) -> dict[str, JSON]:
        """Server-side apply as field manager `virtsync` (PATCH, apply-patch+yaml; JSON
        is YAML). A conflict raises Conflict naming the other manager and field."""
        query = [("fieldManager", manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        what = f"{'dry-run ' if dry_run else ''}applying {r.kind} {_where(namespace, name)}"
        return self.request("PATCH", r.path(namespace, name), query=query, body=dict(body),
                            content_type=APPLY_PATCH, what=what)

    def merge_patch(self, r: Resource, namespace: str, name: str,
                    patch: Mapping[str, JSON]) -> dict[str, JSON]:
        return self.request("PATCH", r.path(namespace, name), query=[("fieldManager", MANAGER)],
                            body=dict(patch), content_type=MERGE_PATCH,
                            what=f"patching {r.kind} {_where(namespace, name)}")

    def create(self, r: Resource, namespace: str, body: Mapping[str, JSON]) -> dict[str, JSON]:
        return self.request("POST", r.path(namespace), query=[("fieldManager", MANAGER)],
                            body=dict(body), what=f"creating a {r.kind} in {namespace}")

    def delete(self, r: Resource, namespace: str, name: str, *,
               propagation: str = "Background", grace_period: int | None = None) -> bool:
        """False when it was already gone."""
        body: dict[str, JSON] = {"kind": "DeleteOptions", "apiVersion": "v1",
                                 "propagationPolicy": propagation}
        if grace_period is not None:
            body["gracePeriodSeconds"] = grace_period
        try:
            self.request("DELETE", r.path(namespace, name), body=body,
                         what=f"deleting {r.kind} {_where(namespace, name)}")
        except NotFound:
            return False
        return True

    def put_subresource(self, r: Resource, namespace: str, name: str, subresource: str,
                        body: Mapping[str, JSON]) -> None:
        self.request("PUT", r.path(namespace, name, subresource), body=dict(body),
                     what=f"{subresource} {r.kind} {_where(namespace, name)}")


def _events(chunks: Iterator[bytes], label: str) -> Iterator[tuple[str, dict[str, JSON]]]:
    """A watch stream (one JSON event per line) as (type, object); an ERROR event is
    raised (410: Expired)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = _json(line)
            kind, obj = str(event.get("type", "")), event.get("object")
            if not isinstance(obj, dict):
                continue
            if kind == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise Expired(f"{label}: {obj.get('message', 'expired')}")
                raise BackendError(f"{label}: {obj.get('message', obj)}")
            yield kind, obj


def _where(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _json(data: bytes | None) -> dict[str, JSON]:
    if not data:
        return {}
    try:
        parsed = json.loads(data)
    except ValueError:
        return {"message": data[:300].decode("utf-8", "replace")}
    return parsed if isinstance(parsed, dict) else {"items": parsed}


def _error(status: int, body: Mapping[str, JSON], label: str) -> BackendError:
    if status == 404:
        return NotFound(f"{label}: not found")
    if status == 409:
        return Conflict(f"{label}: {conflict_text(body)}")
    message = body.get("message") or body.get("reason") or "no message"
    return BackendError(f"{label}: HTTP {status}: {message}")
