"""Set-up shared by the watch tests: a tree of VM files, a Watcher on libvirt's test
driver, and a write counter around the libvirt connection the backend uses.

test:///default keeps its state only while a connection is open in this process, so the
rig holds one open for its lifetime; every rig uses its own namespace so rigs (and other
test folders using the same driver in this process) never see each other's domains.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt
import yaml

from node.domain.naming import SEPARATOR, domain_name
from node.lifecycle.agent import ensure_event_loop
from reconciler.backends.base import Backend
from reconciler.backends.libvirt import LibvirtBackend
from reconciler.core.model import Manifest
from reconciler.execute.apply import ApplyOptions, Outcome
from reconciler.watch.logs import JsonLogger
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.watcher import Watcher, WatchOptions

URI = "test:///default"

# Every libvirt call that changes a domain or the driver's state.
WRITE_CALLS = frozenset({
    "defineXML", "defineXMLFlags", "createXML", "createXMLFlags", "create", "createWithFlags",
    "destroy", "destroyFlags", "shutdown", "shutdownFlags", "reboot", "reset", "suspend",
    "resume", "undefine", "undefineFlags", "setMetadata", "setMemory", "setMemoryFlags",
    "setVcpus", "setVcpusFlags", "attachDevice", "attachDeviceFlags", "detachDevice",
    "detachDeviceFlags", "updateDeviceFlags", "managedSave", "setAutostart",
    "storagePoolDefineXML", "networkDefineXML",
})


class Counting:
    """Wraps a libvirt connection or domain: records write calls, wraps domains it returns."""

    def __init__(self, target: Any, calls: list[str]) -> None:
        self._target = target
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if name in WRITE_CALLS:
                self._calls.append(name)
            return _wrap(attr(*args, **kwargs), self._calls)

        return call


def _wrap(value: Any, calls: list[str]) -> Any:
    if isinstance(value, libvirt.virDomain):
        return Counting(value, calls)
    if isinstance(value, list) and value and isinstance(value[0], libvirt.virDomain):
        return [Counting(v, calls) for v in value]
    return value


def vm_body(name: str, ns: str, *, cores: int = 1, run: str = "Halted",
            labels: dict[str, str] | None = None, user_data: str | None = None,
            annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    tmpl: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        "domain": {"cpu": {"cores": cores}, "memory": {"guest": "64Mi"}, "devices": {}},
    }
    if user_data is not None:
        tmpl["domain"]["devices"]["disks"] = [{"name": "ci", "disk": {"bus": "virtio"}}]
        tmpl["volumes"] = [{"name": "ci", "cloudInitNoCloud": {"userData": user_data}}]
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": meta,
            "spec": {"runStrategy": run, "template": {"spec": tmpl}}}


def vm_yaml(name: str, ns: str, **kw: Any) -> str:
    return yaml.safe_dump(vm_body(name, ns, **kw), sort_keys=False)


def cluster_yaml(base: Path) -> str:
    return yaml.safe_dump({
        "apiVersion": "virtsync.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "local"},
        "spec": {"nodes": [{"name": "n1", "uri": URI, "storageDir": str(base / "storage"),
                            "imageDir": str(base / "images"), "memoryMiB": 65536}]},
    })


@dataclass
class Rig:
    base: Path
    tree: Path
    state: Path
    ns: str
    holder: Any  # the open connection that keeps test:///default's state alive
    calls: list[str] = field(default_factory=list)
    stream: io.StringIO = field(default_factory=io.StringIO)
    metrics: WatchMetrics = field(default_factory=WatchMetrics)
    outcomes: list[tuple[float, Outcome]] = field(default_factory=list)
    watcher: Watcher | None = None

    def write(self, name: str, text: str) -> Path:
        path = self.tree / name
        path.write_text(text)
        return path

    def write_vm(self, name: str, **kw: Any) -> Path:
        return self.write(f"{name}.yaml", vm_yaml(name, self.ns, **kw))

    def domain(self, name: str) -> Any:
        return self.holder.lookupByName(domain_name(self.ns, name))

    def domains(self) -> dict[str, str]:
        """Name → full inactive XML of this rig's domains."""
        prefix = self.ns + SEPARATOR
        return {d.name(): d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                for d in self.holder.listAllDomains(0) if d.name().startswith(prefix)}

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.logs() if r["event"] == name]

    def make_watcher(self, **options: Any) -> Watcher:
        apply = options.pop("apply", ApplyOptions(prune=options.pop("prune", False)))
        opts = WatchOptions(path=str(self.tree), agent=options.pop("agent", False),
                            apply=apply, **options)

        def factory(manifests: Sequence[Manifest]) -> Backend:
            backend = LibvirtBackend.from_manifests(manifests, state=self.state)
            for host in backend.hosts.values():
                host._conn = Counting(libvirt.open(host.config.uri), self.calls)
            return backend

        self.watcher = Watcher(opts, state=self.state, backend_factory=factory,
                               log=JsonLogger(self.stream, level="debug"),
                               metrics=self.metrics,
                               on_outcome=lambda o: self.outcomes.append((time.monotonic(), o)))
        return self.watcher

    def cleanup(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        prefix = self.ns + SEPARATOR
        for d in self.holder.listAllDomains(0):
            if d.name().startswith(prefix):
                if d.isActive():
                    d.destroy()
                d.undefine()
        self.holder.close()


def make_rig(tmp: Path, vms: int = 3, **vm_kw: Any) -> Rig:
    ensure_event_loop()  # before opening: connections opened later can deliver events
    ns = "w" + uuid.uuid4().hex[:8]
    tree = tmp / "tree"
    tree.mkdir()
    rig = Rig(tmp, tree, tmp / "state", ns, libvirt.open(URI))
    rig.write("cluster.yaml", cluster_yaml(tmp))
    for i in range(vms):
        rig.write_vm(f"vm{i}", **vm_kw)
    return rig


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()
