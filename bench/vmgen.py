"""Generate realistic VirtualMachine files for benchmarks (and the tests that need many).

Each file is one VM of ~110 lines: containerDisk root, a dataVolume data disk, an
emptyDisk scratch disk, a cloudInitNoCloud seed, a pod and a multus interface, labels,
annotations and comments — what an operator's repo really holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TEMPLATE = """\
# VM {i}: generated for benchmarks
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm-{i:05d}
  namespace: team-{team}
  labels:
    app.kubernetes.io/name: vm-{i:05d}
    app.kubernetes.io/part-of: fleet-{team}
    environment: production
    tier: {tier}
  annotations:
    virtsync.io/wave: "{wave}"
    description: "generated virtual machine number {i}"
spec:
  runStrategy: {strategy}
  dataVolumeTemplates:
  - metadata:
      name: vm-{i:05d}-data
    spec:
      storage:
        resources:
          requests:
            storage: {disk}Gi
      source:
        blank: {{}}
  template:
    metadata:
      labels:
        kubevirt.io/domain: vm-{i:05d}
        app.kubernetes.io/name: vm-{i:05d}
    spec:
      terminationGracePeriodSeconds: 60
      nodeSelector:
        zone: zone-{zone}
      domain:
        cpu:
          cores: {cores}
          sockets: 1
          threads: 1
        memory:
          guest: {mem}Mi
        resources:
          requests:
            memory: {mem}Mi
        firmware:
          uuid: {uuid}
          serial: SN-{i:08d}
        machine:
          type: q35
        devices:
          disks:
          - name: rootdisk
            bootOrder: 1
            disk:
              bus: virtio
          - name: datadisk
            disk:
              bus: virtio
            serial: DATA{i:08d}
          - name: scratch
            disk:
              bus: virtio
          - name: cloudinitdisk
            disk:
              bus: virtio
          interfaces:
          - name: default
            masquerade: {{}}
            model: virtio
            macAddress: "02:00:{m1:02x}:{m2:02x}:{m3:02x}:01"
          - name: storage
            bridge: {{}}
            model: virtio
            macAddress: "02:00:{m1:02x}:{m2:02x}:{m3:02x}:02"
      networks:
      - name: default
        pod: {{}}
      - name: storage
        multus:
          networkName: storage-net
      volumes:
      - name: rootdisk
        containerDisk:
          image: fedora-{fedora}.qcow2
      - name: datadisk
        dataVolume:
          name: vm-{i:05d}-data
      - name: scratch
        emptyDisk:
          capacity: 2Gi
      - name: cloudinitdisk
        cloudInitNoCloud:
          userData: |
            #cloud-config
            hostname: vm-{i:05d}
            users:
            - name: ops
              ssh_authorized_keys:
              - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGeneratedKey{i:05d} ops@example
            runcmd:
            - [systemctl, enable, --now, qemu-guest-agent]
          networkData: |
            version: 2
            ethernets:
              enp1s0:
                dhcp4: true
"""


def render(i: int, variant: int = 0) -> str:
    return TEMPLATE.format(
        i=i,
        team=i % 17,
        tier=("web", "db", "batch")[i % 3],
        wave=i % 3,
        strategy=("Always", "Halted", "Manual")[i % 3],
        disk=10 + i % 50 + variant,
        zone=i % 4,
        cores=1 + (i + variant) % 4,
        mem=512 * (1 + i % 8),
        uuid=f"{i:08x}-0000-4000-8000-{i:012x}",
        m1=(i >> 16) & 0xFF,
        m2=(i >> 8) & 0xFF,
        m3=i & 0xFF,
        fedora=38 + i % 3,
    )


def generate(out: Path, count: int, *, per_dir: int = 1000) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        d = out / f"group-{i // per_dir:03d}"
        d.mkdir(exist_ok=True)
        p = d / f"vm-{i:05d}.yaml"
        p.write_text(render(i))
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=10_000)
    args = ap.parse_args()
    generate(args.out, args.count)


if __name__ == "__main__":
    main()
