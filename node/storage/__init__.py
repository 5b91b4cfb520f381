"""Disk files on a node: volumes, confinement, cloud-init seeds, QEMU's access."""
