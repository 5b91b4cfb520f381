"""How virtsync marks what it applies in a cluster, and what the cluster reports back
without those marks. Pure.

Rule 3 / rule 18: every object virtsync applies carries the label
`virtsync.io/managed-by: virtsync` and its installation's id
(`virtsync.io/installation`); observe lists only objects whose labels match (a label
selector), so objects others created, or another installation applied, are never
changed, listed or pruned. The git revision and the run strategy virtsync last applied
are annotations: the second tells an operator's `virtctl stop`/`virtsync stop` (KubeVirt
writes `runStrategy: Halted`) from a change git asked for (rule 16).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from reconciler.core.model import JSON, Manifest, VirtsyncError
from reconciler.render.manifests import RenderTarget, select

MANAGED_BY = "virtsync.io/managed-by"
MANAGER = "virtsync"  # the label's value and the server-side-apply field manager
INSTALLATION = "virtsync.io/installation"
SOURCE = "virtsync.io/source"  # on the inventory ConfigMap: which source it records
REVISION = "virtsync.io/revision"
APPLIED_RUN_STRATEGY = "virtsync.io/applied-run-strategy"

MARK_LABELS = (MANAGED_BY, INSTALLATION)
MARK_ANNOTATIONS = (REVISION, APPLIED_RUN_STRATEGY)


def selector(installation: str, *, every_installation: bool = False) -> str:
    """The label selector observe lists with (rule 18)."""
    if every_installation or not installation:
        return f"{MANAGED_BY}={MANAGER}"
    return f"{MANAGED_BY}={MANAGER},{INSTALLATION}={installation}"


def marks(installation: str) -> dict[str, str]:
    out = {MANAGED_BY: MANAGER}
    if installation:
        out[INSTALLATION] = installation
    return out


def is_ours(obj: Mapping[str, JSON], installation: str, *,
            every_installation: bool = False) -> bool:
    labels = _meta(obj).get("labels")
    if not isinstance(labels, Mapping) or labels.get(MANAGED_BY) != MANAGER:
        return False
    return every_installation or not installation or labels.get(INSTALLATION) == installation


def marked_body(m: Manifest, *, installation: str, revision: str,
                run_strategy: str | None = None) -> dict[str, JSON]:
    """What server-side apply sends for `m`: the object `virtsync render` emits for it
    (render's selection: the same kinds, the body as git holds it), with the namespace
    made explicit (a namespaced kind) and virtsync's marks added."""
    rendered = select([m], RenderTarget.KUBEVIRT)
    if not rendered:
        raise VirtsyncError(f"{m.key}: virtsync configuration, not a cluster object")
    body: dict[str, JSON] = copy.deepcopy(dict(rendered[0].body))
    meta = body.setdefault("metadata", {})
    assert isinstance(meta, dict)
    if m.namespace:
        meta["namespace"] = m.namespace
    labels = meta.get("labels")
    meta["labels"] = {**(labels if isinstance(labels, dict) else {}), **marks(installation)}
    annotations = meta.get("annotations")
    extra = {REVISION: revision} if revision else {}
    if run_strategy is not None:
        extra[APPLIED_RUN_STRATEGY] = run_strategy
    if extra:
        meta["annotations"] = {**(annotations if isinstance(annotations, dict) else {}), **extra}
    return body


def without_marks(body: Mapping[str, JSON]) -> dict[str, JSON]:
    """The body without virtsync's marks: what git wrote, compared with git."""
    out = dict(body)
    meta = dict(_meta(out))
    for field, names in (("labels", MARK_LABELS), ("annotations", MARK_ANNOTATIONS)):
        value = meta.get(field)
        if isinstance(value, Mapping):
            kept = {k: v for k, v in value.items() if k not in names}
            if kept:
                meta[field] = kept
            else:
                meta.pop(field, None)
    out["metadata"] = meta
    return out


def annotation(obj: Mapping[str, JSON], name: str) -> str:
    value = _meta(obj).get("annotations")
    found = value.get(name) if isinstance(value, Mapping) else None
    return found if isinstance(found, str) else ""


def _meta(obj: Mapping[str, JSON]) -> Mapping[str, JSON]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}
