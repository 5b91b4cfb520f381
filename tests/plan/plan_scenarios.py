"""Realistic before/after pairs (base revision → pull request head), as YAML text."""

from __future__ import annotations

from plan_helpers import vm

INSTANCETYPE = """\
apiVersion: instancetype.kubevirt.io/v1beta1
kind: VirtualMachineClusterInstancetype
metadata:
  name: {name}
spec:
  cpu:
    guest: {cpus}
  memory:
    guest: 2Gi
"""

DATA_VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: db
  namespace: prod
  annotations:
    virtsync.io/wave: "1"
spec:
  runStrategy: Always
  dataVolumeTemplates:
  - metadata:
      name: db-root
    spec:
      storage:
        resources:
          requests:
            storage: {root}
      source:
        http:
          url: https://images.example.com/debian-12.qcow2
  template:
    spec:
      domain:
        memory:
          guest: 4Gi
        devices:
          disks:
          - name: root
            disk: {{bus: virtio}}
{extra_disk}
      volumes:
      - name: root
        dataVolume:
          name: db-root
{extra_volume}
"""

PINNED = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: {name}
  namespace: prod
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        firmware:
          uuid: 6a1c0c52-4c1e-4a43-9d0b-3c52f0ce2f11
        memory:
          guest: 1Gi
        devices:
          interfaces:
          - name: default
            masquerade: {{}}
            macAddress: "{mac}"
      networks:
      - name: default
        pod: {{}}
"""


def db(root: str = "20Gi", scratch: bool = True, hot: bool = False) -> str:
    disks, volumes = [], []
    if scratch:
        disks.append("          - name: scratch\n            disk: {bus: virtio}")
        volumes.append("      - name: scratch\n        emptyDisk:\n          capacity: 2Gi")
    if hot:
        disks.append("          - name: logs\n            disk: {bus: scsi}")
        volumes.append("      - name: logs\n        dataVolume:\n          name: db-logs\n"
                       "          hotpluggable: true")
    return DATA_VM.format(root=root, extra_disk="\n".join(disks),
                          extra_volume="\n".join(volumes))


def docs(*parts: str) -> str:
    return "---\n".join(parts)


# name → (base, head)
SCENARIOS: dict[str, tuple[str, str]] = {
    "mixed": (
        docs(INSTANCETYPE.format(name="u1.medium", cpus=1), vm("web", cores=2),
             vm("api", run="Halted"), vm("batch"), vm("old"), db()),
        docs(INSTANCETYPE.format(name="u1.medium", cpus=2),
             vm("web", cores=4).replace("app: web", "app: web\n    tier: frontend"),
             vm("api", run="Always"), vm("batch", memory="1024Mi"),
             vm("new", run="Halted"), db(hot=True)),
    ),
    "data-loss": (
        docs(db(), vm("web")),
        docs(db(root="10Gi", scratch=False),
             vm("web").replace("hostname: web", "hostname: web-1")),
    ),
    "rename-identity": (
        docs(PINNED.format(name="alpha", mac="52:54:00:12:34:56"),
             PINNED.format(name="beta", mac="52:54:00:ab:cd:ef").replace(
                 "6a1c0c52-4c1e-4a43-9d0b-3c52f0ce2f11",
                 "0f0e0d0c-0b0a-4908-8706-050403020100")),
        docs(PINNED.format(name="alpha-2", mac="52:54:00:12:34:56"),
             PINNED.format(name="beta", mac="52:54:00:ab:cd:00").replace(
                 "6a1c0c52-4c1e-4a43-9d0b-3c52f0ce2f11",
                 "0f0e0d0c-0b0a-4908-8706-050403020100")),
    ),
    "no-changes": (
        docs(vm("web", memory="1Gi"), db()),
        docs(vm("web", memory="1024Mi").replace("runStrategy: Always", "running: true"),
             db()),
    ),
}
