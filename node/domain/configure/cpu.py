"""vCPU count, CPU mode/model and topology (sockets × cores × threads)."""

from __future__ import annotations

from lxml import etree

from node.domain.inputs import DomainInputs
from node.domain.xml import sub

# KubeVirt's special model names map to libvirt CPU modes.
_MODES = {"host-model": "host-model", "host-passthrough": "host-passthrough"}


def configure_cpu(inp: DomainInputs, dom: etree._Element) -> None:
    cpu = inp.vm.cpu
    sub(dom, "vcpu", {"placement": "static"}, str(cpu.vcpus))
    attrs: dict[str, str] = {}
    model = cpu.model
    if model in _MODES:
        attrs["mode"] = _MODES[model]
        model = None
    elif model is None and inp.node.domain_type == "kvm":
        # KubeVirt's default; under TCG (no KVM) host-model is not available, so the
        # emulator's default CPU is used instead.
        attrs["mode"] = "host-model"
    el = sub(dom, "cpu", attrs)
    if model is not None:
        el.set("mode", "custom")
        el.set("match", "exact")
        sub(el, "model", {"fallback": "forbid"}, model)
    sub(
        el,
        "topology",
        {"sockets": str(cpu.sockets), "cores": str(cpu.cores), "threads": str(cpu.threads)},
    )
