"""Wording and value formatting shared by the text and markdown renderers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from reconciler.core.model import JSON, Action, DiffOp
from reconciler.core.sensitive import MASK
from reconciler.planning.classify import Disruption
from reconciler.planning.plan_model import FieldChange, ObjectChange, Plan, Summary
from reconciler.planning.schedule import DRAIN_HELD, UNSCHEDULABLE

MAX_VALUE_CHARS = 200

LEGEND = {
    "+": "create / add",
    "~": "update in place",
    "-/+": "replace (undefine, define again)",
    "-": "delete / remove",
    "!": "destroys data",
    "=": "kept",
}


def symbol(c: ObjectChange) -> str:
    if Action.REPLACE in c.actions:
        return "-/+"
    if Action.CREATE in c.actions:
        return "+"
    if c.is_delete:
        return "-"
    return "~"


def heading(c: ObjectChange) -> str:
    """What happens to the object, in the words a reviewer scans for."""
    if c.disruption == Disruption.DATA_LOSS:
        return "will be deleted: WILL DESTROY DATA" if c.is_delete else "WILL DESTROY DATA"
    if Action.REPLACE in c.actions:
        if c.previous_key is not None:
            return f"must be replaced (renamed from {c.previous_key})"
        return "must be replaced"
    if Action.CREATE in c.actions:
        return ("will be created and started" if Action.START in c.actions
                else "will be created")
    if c.is_delete:
        return "will be deleted"
    if Action.MIGRATE in c.actions and c.placement is not None:
        return f"will be live-migrated: migrate {c.placement.previous_node} → {c.placement.node}"
    if Action.RESTART in c.actions:
        return "will be restarted"
    if Action.STOP in c.actions:
        return "will be stopped"
    if Action.START in c.actions:
        return "will be started"
    if c.disruption == Disruption.LIVE:
        return "will be updated live"
    return "will be updated in place (no guest disruption)"


def data_loss_line(s: Summary) -> str | None:
    if not s.data_loss:
        return None
    return (f"{s.data_loss} object{'s' if s.data_loss != 1 else ''} WILL DESTROY DATA "
            "(apply refuses without --allow-data-loss).")


def summary_line(s: Summary) -> str:
    # Migrations are named only when there are some (Terraform does so with imports).
    migrate = f"{s.migrate} to migrate, " if s.migrate else ""
    return (f"Plan: {s.create} to create, {s.update} to update, {s.restart} to restart, "
            f"{migrate}{s.replace} to replace, {s.delete} to delete.")


def join_path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    if key and all(ch.isalnum() or ch in "_-" for ch in key):
        return f"{base}.{key}" if base and base != "." else key
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{base}["{escaped}"]'


def scalar(value: JSON) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        return f"{text[:MAX_VALUE_CHARS]}… ({len(text) - MAX_VALUE_CHARS} more characters)"
    return text


def leaves(path: str, value: JSON) -> Iterator[tuple[str, JSON]]:
    """(path, scalar) for every leaf of a value; empty containers are leaves. Items of a
    list of named objects are shown as [name=x], the way the plan names them."""
    if isinstance(value, Mapping) and value:
        named = path.endswith(f"[name={value.get('name')}]")
        items = [(k, v) for k, v in value.items() if not (named and k == "name")]
        if not items:
            yield path, {}
        for k, v in items:
            yield from leaves(join_path(path, k), v)
    elif isinstance(value, list) and value and any(isinstance(v, Mapping | list) for v in value):
        names = [v.get("name") if isinstance(v, Mapping) else None for v in value]
        by_name = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        for i, v in enumerate(value):
            if by_name and isinstance(v, Mapping):
                yield from leaves(f"{path}[name={v['name']}]", v)
            else:
                yield from leaves(join_path(path, i), v)
    else:
        yield path, value


@dataclass(frozen=True)
class Line:
    """One diff line: symbol (+ ~ -), text, and an optional trailing note."""

    sign: str
    text: str
    note: str = ""


def field_lines(f: FieldChange, *, notes: bool = True) -> list[Line]:
    note = ""
    if not notes:
        pass
    elif f.forces:
        note = _force_note(f)
    elif f.disruption > Disruption.NONE:
        note = f"{f.disruption.label}: {f.reason}"
    if f.identity and notes:
        note = (note + "; " if note else "") + "identity change"
    if f.sensitive:
        text = {DiffOp.CHANGE: "(sensitive value changed)", DiffOp.ADD: "(sensitive value)",
                DiffOp.REMOVE: "(sensitive value)"}.get(f.op, MASK)
        sign = {DiffOp.ADD: "+", DiffOp.REMOVE: "-"}.get(f.op, "~")
        return [Line(sign, f"{f.path}: {text}", note)]
    if f.op in (DiffOp.CHANGE, DiffOp.ORDER):
        if isinstance(f.before, Mapping | list) or isinstance(f.after, Mapping | list):
            if f.op is DiffOp.ORDER:
                return [Line("~", f"{f.path}: {scalar(f.before)} -> {scalar(f.after)}", note)]
            out = [Line("-", f"{p}: {scalar(v)}") for p, v in leaves(f.path, f.before)]
            out += [Line("+", f"{p}: {scalar(v)}") for p, v in leaves(f.path, f.after)]
            return _note_first(out, note)
        return [Line("~", f"{f.path}: {scalar(f.before)} -> {scalar(f.after)}", note)]
    sign, value = ("+", f.after) if f.op is DiffOp.ADD else ("-", f.before)
    return _note_first([Line(sign, f"{p}: {scalar(v)}") for p, v in leaves(f.path, value)],
                       note)


def change_lines(c: ObjectChange) -> list[Line]:
    """Every field line of one change. Per-field notes explain updates; a created or
    deleted object has one class, named in its heading."""
    notes = not ("create" in c.actions or c.is_delete)
    return [line for f in c.fields for line in field_lines(f, notes=notes)]


def _note_first(lines: list[Line], note: str) -> list[Line]:
    if lines and note:
        lines[0] = Line(lines[0].sign, lines[0].text, note)
    return lines


def _force_note(f: FieldChange) -> str:
    verb = {
        Disruption.LIVE: "applied live",
        Disruption.RESTART: "forces restart",
        Disruption.REPLACE: "forces replacement",
        Disruption.DATA_LOSS: "DESTROYS DATA",
    }.get(f.disruption, "")
    return f"{verb}: {f.reason}" if verb else f.reason


def unpinned_summary(plan: Plan, limit: int = 5) -> str | None:
    if not plan.unpinned:
        return None
    keys = sorted({str(u.key) for u in plan.unpinned})
    whats = sorted({u.what for u in plan.unpinned})
    shown = ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit
                                       else "")
    return (f"Identity not pinned in git ({', '.join(whats)}) on {len(keys)} "
            f"object{'s' if len(keys) != 1 else ''}: {shown}. Live values are kept.")


def placement_line(c: ObjectChange) -> str | None:
    """Where the VM runs after the change: `previous → node` when it moves, the
    scheduler's reason when it fits nowhere; None when no node was planned."""
    p = c.placement
    if p is None:
        return None
    if p.node is None:
        return f"placement: {UNSCHEDULABLE}: {p.reason}"
    how = "live migration" if Action.MIGRATE in c.actions else "moves"
    where = f"{p.previous_node} → {p.node} ({how})" if p.moves else p.node
    if p.reason.startswith(DRAIN_HELD):  # a drain that must not move it (issue 10)
        return f"placement: {where} (stays: {p.reason})"
    return f"placement: {where}" + (f" (stays; {UNSCHEDULABLE}: {p.reason})" if p.reason
                                    else "")


def disk_lines(c: ObjectChange) -> list[Line]:
    """A deleted VM's files (safety rule 13): each one deleted, and each one kept with
    the reason (in use by another VM, not owned)."""
    return [Line("-" if d.delete else "=",
                 f"{'delete' if d.delete else 'keep'} file {d.path}"
                 + (f" (volume {d.volume})" if d.volume else ""), d.reason)
            for d in c.disks]

