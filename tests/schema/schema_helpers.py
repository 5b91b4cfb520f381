"""Helpers: build Manifests from YAML text the way the loader does (YAML 1.1, CSafeLoader)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import yaml

from reconciler.core.model import CLUSTER_SCOPED_KINDS, DEFAULT_NAMESPACE, Manifest, SourceRef

BASE_VM = """\
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: web-01
  namespace: prod
  labels:
    app: web
spec:
  runStrategy: Always
  template:
    metadata:
      labels:
        app: web
    spec:
      domain:
        cpu:
          cores: 2
        memory:
          guest: 2Gi
        firmware:
          uuid: 5d307ca9-b3ef-428c-8861-06e72d69f223
          serial: WEB01-SERIAL
        devices:
          disks:
          - name: root
            serial: ROOT-0001
            disk:
              bus: virtio
          - name: cloudinit
            disk:
              bus: virtio
          interfaces:
          - name: default
            masquerade: {}
            macAddress: "52:54:00:12:34:56"
      networks:
      - name: default
        pod: {}
      volumes:
      - name: root
        dataVolume:
          name: web-01-root
      - name: cloudinit
        cloudInitNoCloud:
          userData: |
            #cloud-config
            password: CANARY-7f3a
"""


def manifest(body: Any, file: str = "vm.yaml", doc: int = 0) -> Manifest:
    meta = body.get("metadata") or {}
    kind = body["kind"]
    namespace = "" if kind in CLUSTER_SCOPED_KINDS else meta.get("namespace", DEFAULT_NAMESPACE)
    return Manifest(body["apiVersion"], kind, namespace, meta.get("name", ""), body,
                    SourceRef(file, doc))


def load(text: str) -> Any:
    return yaml.load(text, Loader=yaml.CSafeLoader)


_BASE = load(BASE_VM)


def vm(mutate: Callable[[Any], object] | None = None) -> Any:
    """A fresh, valid VM body, optionally changed by `mutate`."""
    body = copy.deepcopy(_BASE)
    if mutate is not None:
        mutate(body)
    return body


def vmi_spec(body: Any) -> Any:
    return body["spec"]["template"]["spec"]


def devices(body: Any) -> Any:
    return vmi_spec(body)["domain"]["devices"]
