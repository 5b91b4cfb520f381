"""The readiness report as text, markdown (for a pull request) and JSON
(schemas/readiness.schema.json). A summary first, details below."""

from __future__ import annotations

import html
import json
from typing import Any

from reconciler.planning.readiness import Report, VmReadiness
from reconciler.render.markdown import code

FORMAT_VERSION = "1"
MARKER = "<!-- virtsync-readiness -->"


def to_document(report: Report) -> dict[str, Any]:
    s = report.summary
    return {
        "format_version": FORMAT_VERSION,
        "nodes": list(report.nodes),
        "capacity_unknown": list(report.capacity_unknown),
        "summary": {"vms": s.vms, "migratable": s.migratable,
                    "not_migratable": dict(s.blockers), "storage": dict(s.storage),
                    "interfaces_lost_on_migration": s.interfaces_lost,
                    "unschedulable": s.unschedulable, "host_boundary": s.host_boundary},
        "vms": [_vm_doc(v) for v in report.vms],
    }


def _vm_doc(v: VmReadiness) -> dict[str, Any]:
    m, sh, sd, sec = v.migration, v.shape, v.shutdown, v.security
    return {
        "key": v.key, "source": v.source,
        "storage": [{"volume": x.name, "source": x.source, "mode": x.storage,
                     "detail": x.detail} for x in v.storage],
        "interfaces": [{"name": i.name, "binding": i.binding, "network": i.network,
                        "survives_migration": i.survives_migration, "note": i.note}
                       for i in v.interfaces],
        "migration": {"migratable": m.migratable, "method": m.method or None,
                      "source_node": m.source or None, "targets": list(m.targets),
                      "reasons": [{"reason": b.reason.value, "message": b.message}
                                  for b in m.blockers]},
        "shape": {"vcpus": sh.vcpus, "topology": sh.topology, "cpu_model": sh.cpu_model,
                  "memory_mib": sh.memory_mib, "instancetype": sh.instancetype or None,
                  "preference": sh.preference or None, "fits": list(sh.fits),
                  "unschedulable_reason": sh.unfit_reason or None,
                  "capacity_note": sh.capacity_note or None},
        "shutdown": {"run_strategy": sd.run_strategy, "grace_seconds": sd.grace_seconds,
                     "method": sd.method, "eviction_strategy": sd.eviction_strategy,
                     "drain": sd.drain, "downtime": dict(sd.downtime)},
        "security": {"host_disks": list(sec.host_disks), "host_devices": list(sec.host_devices),
                     "firmware": sec.firmware, "launch_security": sec.launch_security or None},
    }


def render_json(report: Report) -> str:
    return json.dumps(to_document(report), indent=2, ensure_ascii=False) + "\n"


def _summary_lines(report: Report) -> list[str]:
    s = report.summary
    lines = [f"{s.vms} VM(s) on {len(report.nodes)} node(s) ({', '.join(report.nodes)}): "
             f"{s.migratable} live-migratable, {s.vms - s.migratable} not."]
    if s.blockers:
        lines.append("Not live-migratable, by first reason: "
                     + ", ".join(f"{r} {n}" for r, n in s.blockers.items()) + ".")
    if s.storage:
        lines.append("Volumes: " + ", ".join(f"{n} {mode}" for mode, n in s.storage.items())
                     + ".")
    if s.interfaces_lost:
        lines.append(f"{s.interfaces_lost} interface(s) do not survive a migration.")
    if s.unschedulable:
        lines.append(f"{s.unschedulable} VM(s) fit on no node (ErrorUnschedulable).")
    if s.host_boundary:
        lines.append(f"{s.host_boundary} VM(s) reach through the host boundary (hostDisk, "
                     "host devices or launchSecurity).")
    if report.capacity_unknown:
        lines.append("Capacity not in the Cluster object (measured live, not checked): "
                     + ", ".join(report.capacity_unknown) + ".")
    return lines


def _vm_lines(v: VmReadiness) -> list[tuple[str, str]]:
    """(topic, text) lines for one VM, shared by text and markdown."""
    m, sh, sd, sec = v.migration, v.shape, v.shutdown, v.security
    mig = (f"yes, {m.method} from {m.source} to {', '.join(m.targets)}" if m.migratable
           else "no: " + "; ".join(str(b) for b in m.blockers))
    out = [("migration", mig)]
    out += [("storage", f"{x.name} ({x.source}): {x.storage} — {x.detail}") for x in v.storage]
    out += [("network", f"{i.name} ({i.binding} on {i.network}): "
                        f"{'survives' if i.survives_migration else 'LOST on'} migration — {i.note}")
            for i in v.interfaces]
    fits = ", ".join(sh.fits) if sh.fits else f"nowhere: {sh.unfit_reason}"
    extra = f", instancetype {sh.instancetype}" if sh.instancetype else ""
    out.append(("shape", f"{sh.vcpus} vCPU ({sh.topology}, {sh.cpu_model}), "
                         f"{sh.memory_mib} MiB{extra}; fits {fits}"))
    if sh.capacity_note:
        out.append(("shape", sh.capacity_note))
    out.append(("shutdown", f"runStrategy {sd.run_strategy}; {sd.method}; "
                            f"evictionStrategy {sd.eviction_strategy} → {sd.drain}"))
    out += [("downtime", f"{cls}: {text}") for cls, text in sd.downtime.items()
            if cls in ("migrate", "restart", "replace")]
    out.append(("security", f"firmware {sec.firmware}; hostDisk "
                            f"{', '.join(sec.host_disks) or 'none'}; host devices "
                            f"{', '.join(sec.host_devices) or 'none'}; launchSecurity "
                            f"{sec.launch_security or 'none'}"))
    return out


def render_text(report: Report) -> str:
    head, *rest = _summary_lines(report)
    lines = ["Readiness: " + head, *rest]
    for v in report.vms:
        lines += ["", f"{v.key} ({v.source})"]
        lines += [f"  {topic:<9} {text}" for topic, text in _vm_lines(v)]
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    out = [MARKER, "### virtsync readiness", ""]
    out += [f"- {html.escape(line, quote=False)}" for line in _summary_lines(report)]
    out += ["", "| VM | live migration | storage | fits on |", "| --- | --- | --- | --- |"]
    for v in report.vms:
        m = v.migration
        mig = (f"yes ({m.method})" if m.migratable
               else "no: " + ", ".join(code(b.reason.value) for b in m.blockers))
        modes = ", ".join(sorted({x.storage for x in v.storage})) or "none"
        fits = ", ".join(v.shape.fits) or "**nowhere**"
        out.append(f"| {code(v.key)} | {mig} | {modes} | {html.escape(fits, quote=False)} |")
    out.append("")
    for v in report.vms:
        out += [f"<details><summary><code>{html.escape(v.key)}</code></summary>", ""]
        out += [f"- **{topic}**: {html.escape(text, quote=False)}" for topic, text in _vm_lines(v)]
        out += ["", "</details>", ""]
    return "\n".join(out)
