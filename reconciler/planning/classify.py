"""Disruption classes of field changes, decided by data tables of rules. Pure.

Each row says: for a field matching `pattern` (of these kinds, for these operations,
when this named condition holds) the change is of `disruption` class, for `reason`. The
first matching row wins, so specific rows come first; the last row catches everything
else as `restart`, the safe assumption for an unknown field.

What differs per backend is a `ClassificationProfile`: its own rows, checked before the
common table, and the facts the planner asks about it. Each backend supplies one (see
`reconciler.backends`); the planner takes it as a value and never names a backend.

Pattern syntax: dot-separated keys; `*` one key; `[*]` one item of a keyed list (or a
list index); `["a.b/c"]` a key with dots or slashes; `(order)` / `(node)` synthetic
fields; a trailing `**` any rest of the path, including none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache, partial

from reconciler.core.model import JSON, DiffOp
from reconciler.core.quantity import Quantity, as_quantity
from reconciler.planning.diff import MISSING, FieldDiff, Marker, Path, PathPart, Sel
from reconciler.planning.normalize import get_path


class Disruption(IntEnum):
    """What a change does to the guest, from harmless to destructive."""

    NONE = 0
    LIVE = 1
    RESTART = 2
    REPLACE = 3
    DATA_LOSS = 4

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> Disruption:
        return cls[label.upper().replace("-", "_")]


VM = "VirtualMachine"
DV = "DataVolume"
INSTANCETYPE_KINDS = frozenset({
    "VirtualMachineInstancetype", "VirtualMachineClusterInstancetype",
    "VirtualMachinePreference", "VirtualMachineClusterPreference",
})


@dataclass(frozen=True)
class Rule:
    pattern: str
    disruption: Disruption
    reason: str
    kinds: frozenset[str] = frozenset({VM})
    ops: frozenset[DiffOp] | None = None  # None = any
    when: str | None = None  # a name in CONDITIONS
    identity: bool = False  # the field is guest identity: flag the change


@dataclass(frozen=True)
class Verdict:
    disruption: Disruption
    reason: str
    identity: bool
    rule: int  # index into the profile's rules, for tests and debugging


N, L, R, X, D = (Disruption.NONE, Disruption.LIVE, Disruption.RESTART, Disruption.REPLACE,
                 Disruption.DATA_LOSS)
ADD, REMOVE = frozenset({DiffOp.ADD}), frozenset({DiffOp.REMOVE})
ADD_REMOVE = ADD | REMOVE
TPL = "spec.template.spec"
DEV = f"{TPL}.domain.devices"
DVT = "spec.dataVolumeTemplates[*].spec"

# Rows every backend shares. A backend's own rows come first (ClassificationProfile).
COMMON_RULES: tuple[Rule, ...] = (
    # identity: never changes silently
    Rule(f"{TPL}.domain.firmware.uuid", R, "firmware UUID is guest identity", identity=True),
    Rule(f"{TPL}.domain.firmware.serial", R, "SMBIOS serial is guest identity", identity=True),
    Rule(f"{DEV}.interfaces[*].macAddress", R, "MAC address is guest identity", identity=True),
    Rule(f"{DEV}.disks[*].serial", R, "disk serial is guest identity", identity=True),
    # where and under which name the domain exists
    Rule("(node)", X, "moves to another node without live migration",
         kinds=frozenset({VM, DV})),
    Rule("metadata.name", X, "renamed: the domain is defined again under the new name",
         kinds=frozenset({VM, DV})),
    Rule("metadata.namespace", X, "moved to another namespace", kinds=frozenset({VM, DV})),
    # metadata and run state
    Rule("metadata.**", N, "metadata only", kinds=frozenset({VM, DV, *INSTANCETYPE_KINDS})),
    Rule("apiVersion", N, "API version spelling only",
         kinds=frozenset({VM, DV, *INSTANCETYPE_KINDS})),
    Rule("spec.runStrategy", L, "run strategy: started or stopped, not redefined"),
    Rule("spec.template.metadata.**", N, "template labels and annotations"),
    # data loss
    Rule("spec.dataVolumeTemplates[*]", D, "owned DataVolume deleted with its data",
         ops=REMOVE),
    # The whole list removed (or added) is one field change: it must weigh what its items
    # would (a missing key is diffed as one subtree, not item by item).
    Rule("spec.dataVolumeTemplates", D, "owned DataVolume deleted with its data",
         ops=REMOVE),
    Rule("spec.dataVolumeTemplates[*]", L, "new owned DataVolume", ops=ADD),
    Rule(f"{DVT}.source.**", D, "new DataVolume source: the disk is re-imported"),
    Rule(f"{DVT}.sourceRef.**", D, "new DataVolume source: the disk is re-imported"),
    Rule(f"{DVT}.*.resources.requests.storage", D, "disk shrunk", when="shrink"),
    Rule(f"{DVT}.*.resources.requests.storage", L, "disk grown (online expansion)",
         when="grow"),
    Rule("spec.dataVolumeTemplates[*].**", D,
         "DataVolume spec is immutable: deleted and created again"),
    Rule(f"{TPL}.volumes[*](file)", D, "disk file missing on the node: its data is gone; "
         "restore the file first to keep it", when="holds_data"),
    Rule(f"{TPL}.volumes[*](file)", L, "generated file missing on the node: written again"),
    Rule(f"{TPL}.volumes[*]", L, "hot-unplugged volume", ops=REMOVE, when="hotpluggable"),
    Rule(f"{TPL}.volumes[*]", D, "volume holding data removed", ops=REMOVE,
         when="holds_data"),
    Rule(f"{TPL}.volumes", D, "volume holding data removed", ops=REMOVE,
         when="any_holds_data"),
    Rule(f"{TPL}.volumes[*].emptyDisk.**", D, "emptyDisk recreated: its contents are lost"),
    Rule(f"{TPL}.volumes[*]", L, "hotplugged volume", ops=ADD, when="hotpluggable"),
    Rule(f"{DEV}.disks[*]", L, "hotplugged disk", ops=ADD_REMOVE, when="hotpluggable"),
    # need a restart
    Rule(f"{TPL}.domain.memory.guest", L, "memory hotplug within maxGuest",
         when="within_max_guest"),
    Rule(f"{TPL}.domain.cpu.**", R, "CPU topology or model"),
    Rule(f"{TPL}.domain.memory.**", R, "guest memory"),
    Rule(f"{TPL}.domain.resources.**", R, "resource requests and limits"),
    Rule(f"{TPL}.domain.machine.**", R, "machine type"),
    Rule(f"{TPL}.domain.firmware.**", R, "firmware"),
    Rule(f"{DEV}.interfaces[*].model", R, "NIC model"),
    Rule(f"{DEV}.disks[*].bootOrder", R, "boot order"),
    Rule(f"{DEV}.disks(order)", R, "disk order (boot order and device names)"),
    Rule(f"{DEV}.interfaces(order)", R, "NIC order (guest interface names)"),
    Rule(f"{DEV}.disks[*]", R, "disk not hotpluggable", ops=ADD_REMOVE),
    Rule(f"{DEV}.**", R, "device change"),
    Rule(f"{TPL}.nodeSelector.**", R, "placement: takes effect when rescheduled"),
    Rule(f"{TPL}.affinity.**", R, "placement: takes effect when rescheduled"),
    Rule(f"{TPL}.terminationGracePeriodSeconds", N, "used at the next stop"),
    Rule(f"{TPL}.evictionStrategy", N, "policy only"),
    Rule("spec.instancetype.**", R, "instancetype changed"),
    Rule("spec.preference.**", R, "preference changed"),
    Rule(f"{TPL}.**", R, "guest definition"),
    # other kinds
    Rule("spec.source.**", D, "new DataVolume source: the disk is re-imported",
         kinds=frozenset({DV})),
    Rule("spec.sourceRef.**", D, "new DataVolume source: the disk is re-imported",
         kinds=frozenset({DV})),
    Rule("spec.*.resources.requests.storage", D, "disk shrunk", kinds=frozenset({DV}),
         when="shrink"),
    Rule("spec.*.resources.requests.storage", L, "disk grown (online expansion)",
         kinds=frozenset({DV}), when="grow"),
    Rule("spec.**", D, "DataVolume spec is immutable: deleted and created again",
         kinds=frozenset({DV})),
    Rule("spec.**", N, "the VMs using it follow (listed with a new revisionName)",
         kinds=INSTANCETYPE_KINDS),
    Rule("**", N, "virtsync configuration", kinds=frozenset({"Cluster"})),
    # anything else: assume the worst that does not lose data
    Rule("**", R, "unclassified field: assumed to need a restart", kinds=frozenset()),
)


@dataclass(frozen=True)
class ClassificationProfile:
    """How one backend's changes are classified: its own rows first, then COMMON_RULES.

    `vm_delete_takes_owned_volumes`: deleting a VM deletes the DataVolumes it owns
    (dataVolumeTemplates), as KubeVirt does. `vms_follow_references`: a VM follows its
    instancetype and preference, so a change to one lists the VMs using it (libvirt).
    `live_migration`: the backend executes the `migrate` action, so a running VM's node
    change may be planned as a live migration (issue 10); otherwise it is a replace."""

    name: str
    own_rules: tuple[Rule, ...] = ()
    vm_delete_takes_owned_volumes: bool = False
    vms_follow_references: bool = False
    live_migration: bool = False

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.own_rules + COMMON_RULES


@dataclass(frozen=True)
class Context:
    """What a condition may look at: the object's kind and both normalized bodies."""

    kind: str
    before: Mapping[str, JSON]
    after: Mapping[str, JSON]


def _volume(ctx: Context, change: FieldDiff) -> JSON:
    """The volume named by a disks[...] or volumes[...] path, from the side that has it."""
    name = next((p.value for p in change.path if isinstance(p, Sel)), None)
    if name is None:
        return None
    for body in (ctx.after, ctx.before):
        volumes = get_path(body, ("spec", "template", "spec", "volumes"))
        if isinstance(volumes, Mapping) and name in volumes:
            return volumes[name]
    return None


def _hotpluggable(ctx: Context, change: FieldDiff) -> bool:
    volume = _volume(ctx, change)
    if not isinstance(volume, Mapping):
        return False
    return any(isinstance(volume.get(src), Mapping) and volume[src].get("hotpluggable") is True
               for src in ("dataVolume", "persistentVolumeClaim"))


def _volume_holds_data(volume: JSON) -> bool:
    return isinstance(volume, Mapping) and any(
        src in volume for src in ("dataVolume", "persistentVolumeClaim", "hostDisk",
                                  "emptyDisk"))


def _holds_data(ctx: Context, change: FieldDiff) -> bool:
    return _volume_holds_data(_volume(ctx, change))


def _any_holds_data(ctx: Context, change: FieldDiff) -> bool:
    """For the whole volumes list (normalized: keyed by name) removed at once."""
    volumes = change.before
    items = volumes.values() if isinstance(volumes, Mapping) else \
        volumes if isinstance(volumes, list) else ()
    return any(_volume_holds_data(v) for v in items)


def _quantities(change: FieldDiff) -> tuple[Quantity, Quantity] | None:
    before, after = as_quantity(change.before), as_quantity(change.after)
    if change.before is MISSING or change.after is MISSING or before is None or after is None:
        return None
    return before, after


def _shrink(ctx: Context, change: FieldDiff) -> bool:
    q = _quantities(change)
    return q is not None and q[1].value < q[0].value


def _grow(ctx: Context, change: FieldDiff) -> bool:
    q = _quantities(change)
    return q is not None and q[1].value > q[0].value


# KubeVirt's default LiveUpdateConfiguration.maxHotplugRatio: a VM that sets no
# maxSockets/maxGuest can be hotplugged up to 4x what it started with.
DEFAULT_HOTPLUG_RATIO = 4


def _within_max(ctx: Context, change: FieldDiff, *, limit: str, ratio: int | None) -> bool:
    """An increase up to the sibling limit field (`maxGuest`, `maxSockets`), unchanged on
    both sides; without a limit, up to `ratio` times the old value (None: never)."""
    q = _quantities(change)
    if q is None or q[1].value <= q[0].value:
        return False
    parents = tuple(p for p in change.path[:-1] if isinstance(p, str))
    if len(parents) != len(change.path) - 1:
        return False
    path = (*parents, limit)
    before_max, after_max = get_path(ctx.before, path), get_path(ctx.after, path)
    if before_max != after_max:
        return False
    if after_max is None:
        return ratio is not None and q[1].value <= q[0].value * ratio
    top = as_quantity(after_max)
    return top is not None and q[1].value <= top.value


CONDITIONS: Mapping[str, Callable[[Context, FieldDiff], bool]] = {
    "hotpluggable": _hotpluggable,
    "holds_data": _holds_data,
    "any_holds_data": _any_holds_data,
    "shrink": _shrink,
    "grow": _grow,
    "within_max_guest": partial(_within_max, limit="maxGuest", ratio=None),
    # KubeVirt LiveUpdate: CPU and memory hotplug, limited by the VM's max or the ratio
    "within_max_sockets_or_ratio": partial(_within_max, limit="maxSockets",
                                           ratio=DEFAULT_HOTPLUG_RATIO),
    "within_max_guest_or_ratio": partial(_within_max, limit="maxGuest",
                                         ratio=DEFAULT_HOTPLUG_RATIO),
}

# --- pattern matching -----------------------------------------------------------------

_TOKEN = re.compile(r'\[\*\]|\["((?:[^"\\]|\\.)*)"\]|\(([a-z]+)\)|\*\*|\*|[^.\[(]+|\.')


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> tuple[str | tuple[str, str], ...]:
    """Tokens: ('key', k), ('item', ''), ('marker', m), ('any', ''), ('rest', '')."""
    tokens: list[str | tuple[str, str]] = []
    pos = 0
    while pos < len(pattern):
        m = _TOKEN.match(pattern, pos)
        if m is None:
            raise ValueError(f"bad classification pattern {pattern!r} at {pos}")
        text = m.group(0)
        pos = m.end()
        if text == ".":
            continue
        if text == "[*]":
            tokens.append(("item", ""))
        elif m.group(1) is not None:
            tokens.append(("key", m.group(1).replace('\\"', '"').replace("\\\\", "\\")))
        elif m.group(2) is not None:
            tokens.append(("marker", m.group(2)))
        elif text == "**":
            tokens.append(("rest", ""))
        elif text == "*":
            tokens.append(("any", ""))
        else:
            tokens.append(("key", text))
    return tuple(tokens)


def matches(pattern: str, path: Path) -> bool:
    tokens = compile_pattern(pattern)
    for i, token in enumerate(tokens):
        assert isinstance(token, tuple)
        kind, value = token
        if kind == "rest":
            return True
        if i >= len(path):
            return False
        if not _match_one(kind, value, path[i]):
            return False
    return len(tokens) == len(path)


def _match_one(kind: str, value: str, part: PathPart) -> bool:
    if kind == "key":
        return isinstance(part, str) and part == value
    if kind == "any":
        return isinstance(part, str)
    if kind == "item":
        return isinstance(part, Sel | int)
    if kind == "marker":
        return isinstance(part, Marker) and part.name == value
    return False


def classify(change: FieldDiff, ctx: Context, profile: ClassificationProfile) -> Verdict:
    """The class of one field change: the first of the profile's rules that applies."""
    for index, rule in enumerate(profile.rules):
        if rule.kinds and ctx.kind not in rule.kinds:
            continue
        if rule.ops is not None and change.op not in rule.ops:
            continue
        if not matches(rule.pattern, change.path):
            continue
        if rule.when is not None and not CONDITIONS[rule.when](ctx, change):
            continue
        return Verdict(rule.disruption, rule.reason, rule.identity, index)
    raise AssertionError("the last rule matches everything")  # pragma: no cover
