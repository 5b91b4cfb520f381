"""The plan's versioned JSON form (schemas/plan.schema.json): `virtsync plan --output
json` and the saved plan file. Format 2 writes a replace as ["delete", "create"], as
Terraform does; a file of another format is refused ("plan again")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reconciler.core.model import Action, DiffOp, ObjectKey, VirtsyncError
from reconciler.planning.classify import Disruption
from reconciler.planning.ownership import DiskFate
from reconciler.planning.plan_model import (
    FieldChange,
    Fingerprints,
    NodePlacement,
    ObjectChange,
    Plan,
    Summary,
    UnpinnedIdentity,
    ordered_actions,
)

FORMAT_VERSION = "2"  # 2: a replace is written ["delete", "create"], as Terraform does


def to_document(plan: Plan) -> dict[str, Any]:
    """The versioned JSON form (schemas/plan.schema.json): output and saved plan file."""
    s = plan.summary
    fp = plan.fingerprints
    return {
        "format_version": FORMAT_VERSION,
        "backend": plan.backend,
        "summary": {"create": s.create, "update": s.update, "restart": s.restart,
                    "migrate": s.migrate, "replace": s.replace, "delete": s.delete, "data_loss": s.data_loss,
                    "unchanged": s.unchanged, "changes": s.changes},
        "changes": [_change_doc(c) for c in plan.changes],
        "unpinned_identity": [{"key": str(u.key), "path": u.path, "what": u.what}
                              for u in plan.unpinned],
        "fingerprints": {
            "desired": {"commit": fp.desired_commit, "tree": fp.desired_tree,
                        "hash": fp.desired_hash},
            "live": {"source": fp.live_source, "hash": fp.live_hash},
        },
    }


def _change_doc(c: ObjectChange) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": str(c.key), "kind": c.key.kind, "namespace": c.key.namespace,
        "name": c.key.name, "api_version": c.api_version, "actions": json_actions(c.actions),
        "disruption": c.disruption.label, "cause": c.cause, "source": c.source,
        "wave": c.wave, "identity_change": c.identity_change,
        "previous_key": str(c.previous_key) if c.previous_key else None,
        "unchanged_fields": c.unchanged,
        "fields": [{"path": f.path, "op": f.op, "before": f.before, "after": f.after,
                    "disruption": f.disruption.label, "reason": f.reason,
                    "identity": f.identity, "sensitive": f.sensitive, "forces": f.forces}
                   for f in c.fields],
        "disks": [{"path": d.path, "volume": d.volume,
                   "action": "delete" if d.delete else "keep", "reason": d.reason}
                  for d in c.disks],
    }
    if c.placement is not None:  # only where the backend places VMs (not in git mode)
        doc["placement"] = {"node": c.placement.node,
                            "previous_node": c.placement.previous_node,
                            "reason": c.placement.reason}
    return doc


def json_actions(actions: Iterable[Action]) -> list[Action]:
    """A change's actions as the JSON plan writes them: a replace is a delete and then a
    create (Terraform's words, in the order apply undefines and defines the domain), before
    any power action; the text and markdown renders keep the one word "replace"."""
    present = tuple(actions)
    if Action.REPLACE not in present:
        return list(present)
    return [Action.DELETE, Action.CREATE, *(a for a in present if a is not Action.REPLACE)]


def model_actions(words: Iterable[str]) -> tuple[Action, ...]:
    """The inverse of `json_actions`; raises ValueError for a word the JSON plan never
    writes (`replace` included)."""
    actions = [Action(w) for w in words]
    if Action.REPLACE in actions:
        raise ValueError("'replace' is written as 'delete', 'create' in this format")
    if Action.DELETE in actions and Action.CREATE in actions:
        actions = [a for a in actions if a not in (Action.DELETE, Action.CREATE)]
        actions.append(Action.REPLACE)
    return ordered_actions(actions)


def _placement(doc: Any) -> NodePlacement | None:
    """Plan files written before placement was planned have none."""
    if doc is None:
        return None
    return NodePlacement(doc["node"], doc["previous_node"], doc["reason"])


def _key(text: str) -> ObjectKey:
    parts = text.split("/")
    if len(parts) == 3:
        return ObjectKey(*parts)
    if len(parts) == 2:
        return ObjectKey(parts[0], "", parts[1])
    raise ValueError(f"bad object key {text!r}")


def from_document(doc: Mapping[str, Any]) -> Plan:
    """A Plan from its JSON form. Raises VirtsyncError for another format version or
    a malformed document."""
    version = doc.get("format_version") if isinstance(doc, Mapping) else None
    if version != FORMAT_VERSION:
        found = f"it is of format version {version}" if isinstance(version, str) else \
            "it has no format_version"
        raise VirtsyncError(f"not a virtsync plan file of format version {FORMAT_VERSION} "
                            f"({found}): plan again (`virtsync plan --out-file`)")
    try:
        changes = tuple(
            ObjectChange(
                key=ObjectKey(c["kind"], c["namespace"], c["name"]),
                api_version=c["api_version"], actions=model_actions(c["actions"]),
                disruption=Disruption.from_label(c["disruption"]), cause=c["cause"],
                fields=tuple(FieldChange(f["path"], DiffOp(f["op"]), f["before"], f["after"],
                                         Disruption.from_label(f["disruption"]), f["reason"],
                                         f["identity"], f["sensitive"], f["forces"])
                             for f in c["fields"]),
                unchanged=c["unchanged_fields"], source=c["source"], wave=c["wave"],
                previous_key=_key(c["previous_key"]) if c["previous_key"] else None,
                identity_change=c["identity_change"],
                disks=tuple(DiskFate(d["path"], d["volume"], d["action"] == "delete",
                                     d["reason"]) for d in c["disks"]),
                placement=_placement(c.get("placement")))
            for c in doc["changes"])
        s = doc["summary"]
        summary = Summary(s["create"], s["update"], s["restart"], s["replace"], s["delete"],
                          s["data_loss"], s["unchanged"], s["migrate"])
        fp = doc["fingerprints"]
        fingerprints = Fingerprints(fp["desired"]["commit"], fp["desired"]["tree"],
                                    fp["desired"]["hash"], fp["live"]["source"],
                                    fp["live"]["hash"])
        unpinned = tuple(UnpinnedIdentity(_key(u["key"]), u["path"], u["what"])
                         for u in doc["unpinned_identity"])
        return Plan(changes, summary, fingerprints, doc["backend"], unpinned)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VirtsyncError(f"malformed plan file: {type(exc).__name__} {exc}") from None


def save_plan(plan: Plan, path: Path) -> None:
    from reconciler.core.fsutil import write_atomic

    write_atomic(path, (json.dumps(to_document(plan), indent=2) + "\n").encode())


def read_plan_document(path: Path) -> Any:
    """A plan file's JSON, unchecked (see reconciler.planning.savedplan for the checks)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise VirtsyncError(f"{path}: cannot read plan file: {exc}") from None


def load_plan(path: Path) -> Plan:
    return from_document(read_plan_document(path))


