"""Core value types shared by every layer: object keys, loaded manifests, findings.

Everything here is immutable and free of I/O. Higher layers (loader, schema, plan,
backends, node) import this module; it imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any, TypeAlias

# Defined in a module light enough for start-up paths that need nothing else (issue 13).
from reconciler.core.errors import ExitCode as ExitCode
from reconciler.core.errors import VirtsyncError as VirtsyncError

# Plain JSON-like data as produced by the loader: dict/list/str/int/float/bool/None only.
JSON: TypeAlias = Any
# A path into a document: mapping keys (str) and list indexes (int).
JSONPath: TypeAlias = tuple[str | int, ...]
# Where a VirtualMachine's instance spec (domain, volumes, networks...) is.
TEMPLATE_PATH: tuple[str, ...] = ("spec", "template", "spec")


def get_path(doc: JSON, path: tuple[str, ...]) -> JSON:
    """The value at `path` in nested mappings, or None where any step is missing."""
    for part in path:
        # dict first: isinstance against the Mapping ABC is slow, and this runs for
        # every field of every VM of a plan (issue 13)
        if type(doc) is not dict and not isinstance(doc, Mapping):
            return None
        doc = doc.get(part)
    return doc


def template_spec_of(body: Mapping[str, JSON]) -> Mapping[str, JSON]:
    """A VirtualMachine body's spec.template.spec, {} when absent or not a mapping."""
    tspec = get_path(body, TEMPLATE_PATH)
    return tspec if isinstance(tspec, Mapping) else {}

DEFAULT_NAMESPACE = "default"

# apiVersion group → kinds virtsync understands.
KUBEVIRT_GROUP = "kubevirt.io"
INSTANCETYPE_GROUP = "instancetype.kubevirt.io"
CDI_GROUP = "cdi.kubevirt.io"
VIRTSYNC_GROUP = "virtsync.io"

KNOWN_KINDS: Mapping[str, frozenset[str]] = {
    KUBEVIRT_GROUP: frozenset({"VirtualMachine"}),
    INSTANCETYPE_GROUP: frozenset(
        {
            "VirtualMachineInstancetype",
            "VirtualMachineClusterInstancetype",
            "VirtualMachinePreference",
            "VirtualMachineClusterPreference",
        }
    ),
    CDI_GROUP: frozenset({"DataVolume"}),
    VIRTSYNC_GROUP: frozenset({"Cluster"}),
}

# Kinds a backend runs on hosts; the others are configuration that VMs refer to.
RUNNABLE_KINDS = frozenset({"VirtualMachine"})

# Kinds that have no namespace (cluster-scoped).
CLUSTER_SCOPED_KINDS = frozenset(
    {"VirtualMachineClusterInstancetype", "VirtualMachineClusterPreference", "Cluster"}
)


# --- vocabularies ---------------------------------------------------------------------
# StrEnum/IntEnum so that JSON and text output stay the plain words and numbers.


class Action(StrEnum):
    """What a plan does to one object. Declaration order is the order within a change."""

    CREATE = "create"
    UPDATE = "update"
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    MIGRATE = "migrate"  # live migration to another node (issue 10)
    REPLACE = "replace"
    DELETE = "delete"


class ApplyWord(StrEnum):
    """How apply reports one object, in kubectl's words."""

    CREATED = "created"
    CONFIGURED = "configured"
    RESTARTED = "restarted"
    MIGRATED = "migrated"
    REPLACED = "replaced"
    STARTED = "started"
    STOPPED = "stopped"
    DELETED = "deleted"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"
    NOT_RUN = "not-run"  # watch: planned but held back (refused, or left by a stop)


class DiffOp(StrEnum):
    """How one field differs: added, removed, changed, or the same items reordered."""

    ADD = "add"
    REMOVE = "remove"
    CHANGE = "change"
    ORDER = "order"


class PrintableStatus(StrEnum):
    """A VM's status.printableStatus, as KubeVirt prints it."""

    RUNNING = "Running"
    PAUSED = "Paused"
    STOPPED = "Stopped"
    STARTING = "Starting"
    STOPPING = "Stopping"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    MIGRATING = "Migrating"
    ERROR_UNSCHEDULABLE = "ErrorUnschedulable"
    ERROR_PVC_NOT_FOUND = "ErrorPvcNotFound"
    UNKNOWN = "Unknown"
    # Reported by KubeVirt itself (the kubevirt backend), never by the libvirt nodes.
    PROVISIONING = "Provisioning"
    TERMINATING = "Terminating"
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    DATA_VOLUME_ERROR = "DataVolumeError"
    WAITING_FOR_VOLUME_BINDING = "WaitingForVolumeBinding"
    WAITING_FOR_RECEIVER = "WaitingForReceiver"


def api_group(api_version: str) -> str:
    """'kubevirt.io/v1' → 'kubevirt.io'; a core 'v1' → ''."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def path_segment(part: str | int, first: bool) -> str:
    """One step of a formatted path: `.name`, `[3]` or `["app.kubernetes.io/name"]`."""
    if isinstance(part, int):
        return f"[{part}]"
    if part and all(c.isalnum() or c in "_-" for c in part):
        return part if first else "." + part
    escaped = part.replace("\\", "\\\\").replace('"', '\\"')
    return f'["{escaped}"]'


def format_path(path: Sequence[str | int]) -> str:
    """Render a JSON path the way kubectl explains fields: spec.template.disks[0].name.

    Keys that are not plain identifiers are quoted: metadata.labels["app.kubernetes.io/name"].
    """
    return "".join(path_segment(p, i == 0) for i, p in enumerate(path)) or "."


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of a declared object: (kind, namespace, name). Cluster-scoped kinds use ''."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, order=True)
class SourceRef:
    """Where an object came from: file path (as given, relative to the cwd when possible)
    and the 0-based index of the YAML document inside that file."""

    file: str
    doc: int = 0


@dataclass(frozen=True)
class Manifest:
    """One loaded object: plain data plus where it came from."""

    api_version: str
    kind: str
    namespace: str
    name: str
    body: Mapping[str, JSON]
    source: SourceRef

    @cached_property  # asked for tens of times per object per plan (issue 13)
    def key(self) -> ObjectKey:
        return ObjectKey(self.kind, self.namespace, self.name)

    @property
    def group(self) -> str:
        return api_group(self.api_version)


@dataclass(frozen=True, order=True)
class Finding:
    """One validation problem, located at file:line:col (1-based) and a JSON path.

    `rule` is a stable identifier (e.g. 'yaml.duplicate-key', 'schema.unknown-field',
    'semantic.disk-volume-missing') that tests and tooling can match on. `message` must
    never contain the value of a sensitive field.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    rule: str
    severity: str = field(default="error", compare=False)

    def as_text(self) -> str:
        if self.line <= 0:  # tree-level finding: no position inside a file
            return f"{self.file}: {self.severity}: {self.message}"
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.path}: {self.message}"


class HasFindings:
    """`errors` and `valid` for any result that carries `findings`."""

    findings: tuple[Finding, ...]

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def valid(self) -> bool:
        return not self.errors


@dataclass(frozen=True, order=True)
class Issue:
    """A problem found in one document, before it is located in the file.

    Schema and semantic checks return Issues (pure, path-based); the validate pipeline
    turns them into Findings by mapping `path` to line and column. `path` points at the
    offending node itself; for a missing or unknown key it is the key's own path
    (e.g. ('spec', 'runStrategy')), so the error lands on the right line.
    """

    path: JSONPath
    message: str
    rule: str


@dataclass(frozen=True, order=True)
class UniqueClaim:
    """A value that must be unique across the whole tree, claimed by one document.

    `what` names the identity kind: 'object', 'firmware uuid', 'firmware serial',
    'MAC address', 'disk serial'. `value` is normalized (lower-case MAC/UUID).
    """

    what: str
    value: str
    path: JSONPath


class HostPathKind(StrEnum):
    HOST_DISK = "hostDisk"  # a VM volume's hostDisk.path
    HOST_DISK_DIR = "hostDiskDir"  # a Cluster node's hostDisk root


@dataclass(frozen=True, order=True)
class HostPath:
    """A host path a document names, checked against the tree's Cluster config."""

    what: HostPathKind
    value: str
    path: JSONPath


@dataclass(frozen=True)
class ManifestFacts:
    """The small, cacheable summary of one valid-enough document that cross-file checks
    need: its key, where it is, the unique values it claims and the host paths it names."""

    key: ObjectKey
    source: SourceRef
    claims: tuple[UniqueClaim, ...] = ()
    host_paths: tuple[HostPath, ...] = ()


# Volume sources that name a claim (a disk shared by name, kept across VM deletions).
CLAIM_SOURCES = frozenset({"persistentVolumeClaim", "dataVolume"})


@dataclass(frozen=True, order=True)
class DiskFile:
    """One file a VM's domain uses on its node, as observed: which volume (empty for a
    leftover in the VM's own directory), its source kind (persistentVolumeClaim,
    dataVolume, containerDisk, emptyDisk, cloudInitNoCloud; "file" for a leftover), the
    claim name for a claim, the path, and whether the file exists."""

    volume: str
    source: str
    path: str
    exists: bool
    claim: str = ""

    @property
    def is_claim(self) -> bool:
        return self.source in CLAIM_SOURCES

