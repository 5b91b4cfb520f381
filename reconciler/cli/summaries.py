"""One line per subcommand for `virtsync --help`, kept apart from the subcommand modules
so that the top-level help imports none of them (start-up pays only for the command that
runs, issue 13). Each module's HELP is its line here."""

from __future__ import annotations

SUMMARIES: dict[str, str] = {
    "validate": "Check VM specs: YAML safety, JSON Schema and semantic rules, with file:line "
                "errors.",
    "plan": "Show what a change does to every VM (none, live, restart, replace, data-loss).",
    "pin": "Write each VM's generated identity (firmware uuid/serial, MACs) into its YAML file.",
    "apply": "Make the hosts match the specs: execute the plan (restarts and data loss need "
             "flags).",
    "status": "Show every VM this installation manages: node, status, readiness, age, applied "
              "revision, drift.",
    "start": "Start, stop or restart a VM's guest (graceful; --force only on request).",
    "agent": "Run the node lifecycle agents (run strategies) until SIGTERM; watch includes them.",
    "watch": "Reconcile continuously: apply each saved change (or commit) and heal drift.",
    "render": "Print the tree's objects as KubeVirt manifests (validated, byte-for-byte deterministic) for Argo CD, Flux or kubectl.",
    "readiness": "Report per VM and for the tree: storage mode, network, live migration (KubeVirt's reasons), CPU/memory fit, shutdown behaviour and security boundary.",
    "migrate": "Live-migrate a running VM to another node (the guest keeps running).",
    "drain": "Cordon a node and move its VMs off by their eviction strategy (uncordon: undo).",
    "uncordon": "Let placement use a drained node again.",
}
for _word in ("stop", "restart"):  # one module, three words
    SUMMARIES[_word] = SUMMARIES["start"]
