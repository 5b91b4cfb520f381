"""Trees for the kubevirt CLI scenarios: a Cluster object naming the backend, VMs."""

from __future__ import annotations

from pathlib import Path

CLUSTER = """\
apiVersion: virtsync.io/v1alpha1
kind: Cluster
metadata:
  name: {name}
spec:
  backend: {backend}
{extra}"""

KUBE_CLUSTER = CLUSTER.format(name="kube", backend="kubevirt",
                              extra="  kubevirt:\n    context: model\n")


def kube_cluster(context: str, namespace: str) -> str:
    """A Cluster object for a real cluster: its kubeconfig context, the inventory's
    namespace."""
    extra = f"  kubevirt:\n    namespace: {namespace}\n"
    if context:
        extra += f"    context: {context}\n"
    return CLUSTER.format(name="kube", backend="kubevirt", extra=extra)

VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    app: {name}
{annotations}spec:
  runStrategy: {run}
  dataVolumeTemplates:
  - metadata:
      name: {name}-root
    spec:
      source:
        blank: {{}}
      storage:
{access}        resources:
          requests:
            storage: 1Gi
  template:
    spec:
      domain:
        cpu:
          sockets: {sockets}
        memory:
          guest: {memory}
        devices:
          disks:
          - name: root
            disk:
              bus: virtio
          interfaces:
          - name: default
            masquerade: {{}}
      networks:
      - name: default
        pod: {{}}
      volumes:
      - name: root
        dataVolume:
          name: {name}-root
"""


# an instancetype, a preference, a DataVolume and a VM using all three
SIZES = """\
apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterInstancetype
metadata:
  name: small
spec:
  cpu:
    guest: 1
  memory:
    guest: 1Gi
---
apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachinePreference
metadata:
  name: virtio
  namespace: default
spec:
  devices:
    preferredDiskBus: virtio
"""

DATA = """\
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: data
  namespace: default
spec:
  source:
    blank: {}
  storage:
    resources:
      requests:
        storage: 2Gi
"""

APP = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: app
  namespace: default
spec:
  runStrategy: Always
  instancetype:
    kind: VirtualMachineClusterInstancetype
    name: small
  preference:
    kind: VirtualMachinePreference
    name: virtio
  template:
    spec:
      domain:
        devices:
          disks:
          - name: data
            disk: {}
      volumes:
      - name: data
        dataVolume:
          name: data
"""


def vm(name: str, *, run: str = "Always", sockets: int = 1, memory: str = "1Gi",
       disk_policy: str = "", shared: bool = False, namespace: str = "default") -> str:
    """`shared`: the disk is ReadWriteMany (KubeVirt live-migrates only such VMs)."""
    annotations = (f"  annotations:\n    virtsync.io/disk-policy: {disk_policy}\n"
                   if disk_policy else "")
    access = "        accessModes:\n        - ReadWriteMany\n" if shared else ""
    return VM.format(name=name, run=run, sockets=sockets, memory=memory,
                     annotations=annotations, access=access, namespace=namespace)


def write(root: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
