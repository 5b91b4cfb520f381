"""Request semantics of the Kubernetes API model: create, get, list, replace, patch,
server-side apply and delete of one resource type, with resourceVersion, generation,
uid, managedFields, dry run and admission (defaulting + OpenAPI validation).

This is a MODEL of kube-apiserver behaviour (see README.md), not an API server.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import managed, patches
from .errors import ApiError, already_exists, bad_request, invalid, not_found, stale
from .resources import ResourceType, by_kind
from .selectors import field_selector, label_selector
from .store import Store

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY_YAML = "application/apply-patch+yaml"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Fields the server owns; a write cannot set them.
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                "selfLink", "deletionTimestamp")


@dataclass
class Options:
    """The query parameters (and DeleteOptions body fields) a write honours."""

    dry_run: bool = False
    field_manager: str | None = None
    force: bool = False
    user_agent: str = ""
    propagation_policy: str | None = None
    strict_fields: bool = False
    preconditions: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def manager(self) -> str:
        # The API server defaults fieldManager to the user agent's first word.
        return self.field_manager or (self.user_agent.split("/")[0] or "unknown")


@dataclass
class Admission:
    """Mutating and validating admission hooks: `mutate(rtype, old, new)` edits new in
    place; `validate(rtype, obj)` returns (field, message) pairs."""

    mutators: list[Callable[[ResourceType, JSON | None, JSON], None]] = field(
        default_factory=list)
    validators: list[Callable[[ResourceType, JSON], list[tuple[str, str]]]] = field(
        default_factory=list)
    pruners: list[Callable[[ResourceType, JSON], list[str]]] = field(default_factory=list)

    def prune(self, rtype: ResourceType, obj: JSON, opts: Options) -> None:
        """Drop unknown fields with a warning; 400 under fieldValidation=Strict."""
        unknown = [p for prune in self.pruners for p in prune(rtype, obj)]
        if unknown and opts.strict_fields:
            raise bad_request("strict decoding error: " + ", ".join(
                f'unknown field "{p}"' for p in unknown))
        opts.warnings.extend(f'unknown field "{p}"' for p in unknown)


def _spec_part(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion",
                                                        "kind")}


class Api:
    """The verbs, over a Store; `after_write` runs (outside dry run) after every write."""

    def __init__(self, store: Store, admission: Admission) -> None:
        self.store = store
        self.admission = admission
        self.namespaces_required = True

    # ---- reads -------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> JSON:
        with self.store.lock:
            found = self.store.read(rtype, namespace, name)
        if found is None:
            raise not_found(rtype.plural, rtype.group, name)
        return found

    def list(self, rtype: ResourceType, namespace: str | None, query: dict[str, str]) -> JSON:
        labels = label_selector(query.get("labelSelector"))
        fields = field_selector(query.get("fieldSelector"))
        with self.store.lock:
            items = [o for o in self.store.all_of(rtype, namespace) if labels(o) and fields(o)]
            rv = self.store.rv
        return {"apiVersion": rtype.api_version, "kind": f"{rtype.kind}List",
                "metadata": {"resourceVersion": str(rv)}, "items": items}

    # ---- writes ------------------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str | None, body: JSON,
               opts: Options) -> JSON:
        obj = self._checked_body(rtype, namespace, body, opts, name=None)
        if rtype.status_subresource:
            obj.pop("status", None)  # status is written through /status only
        with self.store.lock:
            name = obj["metadata"]["name"]
            if self.store.read(rtype, namespace, name) is not None:
                raise already_exists(rtype.plural, rtype.group, name)
            managed.record_update(None, obj, opts.manager(), rtype.api_version,
                                  status_subresource=rtype.status_subresource)
            return self._persist(rtype, None, obj, opts, manager=opts.manager(),
                                 operation=managed.UPDATE)

    def replace(self, rtype: ResourceType, namespace: str | None, name: str, body: JSON,
                opts: Options) -> JSON:
        obj = self._checked_body(rtype, namespace, body, opts, name=name)
        with self.store.lock:
            old = self.store.read(rtype, namespace, name)
            if old is None:
                raise not_found(rtype.plural, rtype.group, name)
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if not sent_rv and rtype.group:
                raise invalid(rtype.kind, rtype.group, name, [(
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update")])
            if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise stale(rtype.plural, rtype.group, name)
            if rtype.status_subresource:
                obj["status"] = old.get("status", {})
                if not obj["status"]:
                    obj.pop("status")
            obj["metadata"]["managedFields"] = old["metadata"].get("managedFields", [])
            managed.record_update(old, obj, opts.manager(), rtype.api_version,
                                  status_subresource=rtype.status_subresource)
            return self._persist(rtype, old, obj, opts, manager=opts.manager(),
                                 operation=managed.UPDATE)

    def patch(self, rtype: ResourceType, namespace: str | None, name: str, raw: bytes,
              content_type: str, opts: Options) -> JSON:
        if content_type == APPLY_YAML:
            return self.apply(rtype, namespace, name, raw, opts)
        if opts.force:
            raise bad_request("force: Invalid value: true: may not be specified for "
                              "non-apply patch")
        body = _decode_json(raw)
        with self.store.lock:
            old = self.store.read(rtype, namespace, name)
            if old is None:
                raise not_found(rtype.plural, rtype.group, name)
            if content_type == MERGE or (content_type == STRATEGIC and not rtype.group):
                new = patches.merge_patch(old, body)
            elif content_type == JSONPATCH:
                new = patches.json_patch(old, body)
            else:
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: {JSONPATCH}, {MERGE}, {APPLY_YAML}")
            self._check_precondition(rtype, old, new, name)
            self.admission.prune(rtype, new, opts)
            new = self._server_fields_restored(rtype, old, new)
            managed.record_update(old, new, opts.manager(), rtype.api_version,
                                  status_subresource=rtype.status_subresource)
            return self._persist(rtype, old, new, opts, manager=opts.manager(),
                                 operation=managed.UPDATE)

    def apply(self, rtype: ResourceType, namespace: str | None, name: str, raw: bytes,
              opts: Options) -> JSON:
        if not opts.field_manager:
            raise bad_request("PATCH " + rtype.plural + ": fieldManager is required for "
                              "apply requests")
        try:
            body = yaml.safe_load(raw.decode())
        except yaml.YAMLError as err:
            raise bad_request(f"error decoding YAML: {err}") from err
        if not isinstance(body, dict):
            raise bad_request("apply body must be an object")
        if (body.get("apiVersion"), body.get("kind")) != (rtype.api_version, rtype.kind):
            raise bad_request(f"apply body must have apiVersion {rtype.api_version} and kind "
                              f"{rtype.kind}, got {body.get('apiVersion')} {body.get('kind')}")
        obj = self._checked_body(rtype, namespace, body, opts, name=name)
        with self.store.lock:
            old = self.store.read(rtype, namespace, name)
            sent_rv = (body.get("metadata") or {}).get("resourceVersion")
            if old is not None and sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise stale(rtype.plural, rtype.group, name)
            request = managed.ApplyRequest(opts.field_manager, rtype.api_version, opts.force,
                                           rtype.status_subresource)
            new = managed.apply(old, obj, request)
            if old is not None:
                new = self._server_fields_restored(rtype, old, new)
            return self._persist(rtype, old, new, opts, manager=opts.field_manager,
                                 operation=managed.APPLY)

    def delete(self, rtype: ResourceType, namespace: str | None, name: str,
               opts: Options) -> JSON:
        if opts.propagation_policy not in (None, "Orphan", "Background", "Foreground"):
            raise bad_request(f"propagationPolicy: Unsupported value: "
                              f'"{opts.propagation_policy}"')
        with self.store.lock:
            old = self.store.read(rtype, namespace, name)
            if old is None:
                raise not_found(rtype.plural, rtype.group, name)
            for key in ("uid", "resourceVersion"):
                wanted = opts.preconditions.get(key)
                if wanted and wanted != old["metadata"][key]:
                    label = "UID" if key == "uid" else "ResourceVersion"
                    raise ApiError(409, "Conflict", f"Precondition failed: {label} in "
                                   f"precondition: {wanted}, {label} in object meta: "
                                   f"{old['metadata'][key]}")
            if opts.dry_run:
                return old
            self.store.write(rtype, old, "DELETED")
            if opts.propagation_policy == "Orphan":
                self._orphan(old["metadata"]["uid"])
            if rtype.kind == "Namespace":
                self._empty_namespace(name)
            # Otherwise dependents go at the controller's next step (garbage collection).
            return old

    def _empty_namespace(self, namespace: str) -> None:
        """Deleting a namespace deletes what is in it (at once; no Terminating phase)."""
        for key, obj in list(self.store.objects.items()):
            if key[2] == namespace and by_kind(key[0], key[1]).namespaced:
                self.store.write(by_kind(key[0], key[1]), copy.deepcopy(obj), "DELETED")

    def _orphan(self, owner_uid: str) -> None:
        """propagationPolicy=Orphan: dependents lose their ownerReference and stay."""
        for key, obj in list(self.store.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            kept = [r for r in refs if r.get("uid") != owner_uid]
            if len(kept) != len(refs):
                orphan = copy.deepcopy(obj)
                if kept:
                    orphan["metadata"]["ownerReferences"] = kept
                else:
                    orphan["metadata"].pop("ownerReferences")
                self.store.write(by_kind(key[0], key[1]), orphan, "MODIFIED")

    # ---- internals ---------------------------------------------------------------------
    def _checked_body(self, rtype: ResourceType, namespace: str | None, body: JSON,
                      opts: Options, *, name: str | None) -> JSON:
        if not isinstance(body, dict):
            raise bad_request("the request body must be an object")
        obj = copy.deepcopy(body)
        self.admission.prune(rtype, obj, opts)
        meta = obj.setdefault("metadata", {})
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        if (obj["apiVersion"], obj["kind"]) != (rtype.api_version, rtype.kind):
            raise bad_request(f"the body names {obj['kind']} {obj['apiVersion']}, the URL "
                              f"{rtype.kind} {rtype.api_version}")
        for server_field in _SERVER_META:
            meta.pop(server_field, None)
        if name is not None and meta.get("name", name) != name:
            raise bad_request(f"the name of the object ({meta.get('name')}) does not match "
                              f"the name on the URL ({name})")
        if name is not None:
            meta["name"] = name
        if not meta.get("name"):
            raise invalid(rtype.kind, rtype.group, "", [("metadata.name",
                                                         "Required value: name is required")])
        if not _NAME.match(meta["name"]) or len(meta["name"]) > 253:
            raise invalid(rtype.kind, rtype.group, meta["name"], [(
                "metadata.name", f'Invalid value: "{meta["name"]}": a lowercase RFC 1123 '
                "subdomain must consist of lower case alphanumeric characters, '-' or '.'")])
        if rtype.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            meta["namespace"] = namespace
            self._require_namespace(namespace or "")
        else:
            meta.pop("namespace", None)
        return obj

    def _require_namespace(self, namespace: str) -> None:
        if not self.namespaces_required:
            return
        ns_type = by_kind("v1", "Namespace")
        with self.store.lock:
            if self.store.read(ns_type, None, namespace) is None:
                raise not_found("namespaces", "", namespace)

    def _check_precondition(self, rtype: ResourceType, old: JSON, new: JSON,
                            name: str) -> None:
        sent = new.get("metadata", {}).get("resourceVersion")
        if sent and sent != old["metadata"]["resourceVersion"]:
            raise stale(rtype.plural, rtype.group, name)

    def _server_fields_restored(self, rtype: ResourceType, old: JSON, new: JSON) -> JSON:
        """Patches cannot change identity or server metadata; status only via /status."""
        new = copy.deepcopy(new)
        meta = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        if rtype.status_subresource:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    def _persist(self, rtype: ResourceType, old: JSON | None, new: JSON, opts: Options, *,
                 manager: str, operation: str) -> JSON:
        """Admit (defaults attributed to the request's manager, as Kubernetes attributes
        mutating admission), validate, set server metadata, and store unless dry run."""
        before_defaults = copy.deepcopy(new)
        for mutate in self.admission.mutators:
            mutate(rtype, old, new)
        _attribute_defaults(rtype, before_defaults, new, manager, operation)
        meta = new["metadata"]
        if old is None:
            meta["uid"] = self.store.next_uid()
            meta["creationTimestamp"] = managed.now()
            if rtype.group:  # custom resources have a generation; ConfigMaps do not
                meta["generation"] = 1
        else:
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
            if rtype.group and _spec_part(old) != _spec_part(new):
                meta["generation"] = old["metadata"]["generation"] + 1
        causes = [c for validate in self.admission.validators for c in validate(rtype, new)]
        if causes:
            raise invalid(rtype.kind, rtype.group, meta["name"], causes)
        if old is not None and not managed.applied_fields_changed(old, new):
            return old  # a no-op write: no resourceVersion bump, no event
        if opts.dry_run:
            return new
        return self.store.write(rtype, new, "ADDED" if old is None else "MODIFIED")


def _attribute_defaults(rtype: ResourceType, before: JSON, after: JSON, manager: str,
                        operation: str) -> None:
    from .fields import leaves, lookup, tracked_view
    view_b = tracked_view(before, status_subresource=rtype.status_subresource)
    view_a = tracked_view(after, status_subresource=rtype.status_subresource)
    added = {p for p in leaves(view_a) if lookup(view_b, p) != lookup(view_a, p)}
    if not added:
        return
    entries = managed.entries_of(after)
    for e in entries:
        if e.manager == manager and e.operation == operation:
            e.fields |= added
            break
    else:
        entries.append(managed.Entry(manager, operation, rtype.api_version, added))
    managed.store_entries(after, entries)


def _decode_json(raw: bytes) -> Any:
    import json
    try:
        return json.loads(raw or b"null")
    except ValueError as err:
        raise bad_request(f"error decoding patch: {err}") from err
