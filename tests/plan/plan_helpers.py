"""Small builders for plan tests: manifests from YAML text (through the real loader),
paths from their printed form, fixed fingerprints."""

from __future__ import annotations

import re
import textwrap

from reconciler.backends import registry
from reconciler.core.model import Manifest
from reconciler.planning.classify import ClassificationProfile
from reconciler.planning.diff import Marker, Path, PathPart, Sel
from reconciler.planning.plan import make_plan
from reconciler.planning.plan_model import Fingerprints, Observed, Plan
from reconciler.tree.loader import load_bytes

FP = Fingerprints(
    desired_commit="1111111111111111111111111111111111111111",
    desired_tree="2222222222222222222222222222222222222222",
    desired_hash="sha256:" + "3" * 64,
    live_source="git:origin/main@4444444444444444444444444444444444444444",
    live_hash="sha256:" + "5" * 64,
)



def profile(backend: str = "libvirt") -> ClassificationProfile:
    """A registered backend's classification profile; `kubevirt:Stage` is KubeVirt's for a
    Cluster config with that rollout strategy (plain `kubevirt`: the default)."""
    name, _, strategy = backend.partition(":")
    cluster = {"kubevirt": {"vmRolloutStrategy": strategy}} if strategy else {}
    return registry.profile(name).for_cluster(cluster).classification


LIBVIRT = profile("libvirt")

_PART = re.compile(r'\[name=([^\]]+)\]|\[(\d+)\]|\((\w+)\)|\["([^"]+)"\]|([^.\[(]+)|\.')


def P(text: str) -> Path:
    """'spec.x.disks[name=a].bus' → ('spec', 'x', 'disks', Sel('name', 'a'), 'bus')."""
    out: list[PathPart] = []
    pos = 0
    while pos < len(text):
        m = _PART.match(text, pos)
        assert m is not None, text
        pos = m.end()
        sel, index, marker, quoted, key = m.groups()
        if sel is not None:
            out.append(Sel("name", sel))
        elif index is not None:
            out.append(int(index))
        elif marker is not None:
            out.append(Marker(marker))
        elif quoted is not None:
            out.append(quoted)
        elif key is not None:
            out.append(key)
    return tuple(out)


def manifests(yaml_text: str, file: str = "vms.yaml") -> list[Manifest]:
    loaded = load_bytes(textwrap.dedent(yaml_text).encode(), file)
    assert not [f for f in loaded.findings if f.severity == "error"], loaded.findings
    return list(loaded.manifests)


def plan_of(head: str, base: str, *, backend: str = "libvirt") -> Plan:
    desired = manifests(head, "head.yaml") if head.strip() else []
    live = [Observed(m) for m in manifests(base, "base.yaml")] if base.strip() else []
    return make_plan(desired, live, fingerprints=FP, profile=profile(backend))


VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: prod
  labels:
    app: web
spec:
  runStrategy: {run}
  template:
    spec:
      domain:
        cpu:
          cores: {cores}
        memory:
          guest: {memory}
        devices:
          disks:
          - name: root
            disk:
              bus: virtio
          - name: cloudinit
            disk:
              bus: virtio
          interfaces:
          - name: default
            masquerade: {{}}
            model: virtio
      networks:
      - name: default
        pod: {{}}
      volumes:
      - name: root
        persistentVolumeClaim:
          claimName: {name}-root
      - name: cloudinit
        cloudInitNoCloud:
          userData: |
            #cloud-config
            hostname: {name}
"""


def vm(name: str = "web", run: str = "Always", cores: int = 2, memory: str = "1Gi") -> str:
    return VM.format(name=name, run=run, cores=cores, memory=memory)
