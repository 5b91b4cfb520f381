"""The floors virtsync is compared with, each run as its own process (bench/measure.py).

    floors.py parse ROOT|FILE...   libyaml (CSafeLoader) parse of every *.yaml under ROOT
    floors.py stat ROOT            stat of every *.yaml under ROOT (what a warm check must do)
    floors.py listxml URI          connect, list every domain, fetch each one's XML
    floors.py rawapply SPEC URI    qemu-img create each disk + defineXML each domain
    floors.py start                the bare interpreter with argparse (for `--help`)

Deliberately minimal imports: the floor is what the job needs, nothing more.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _yaml_files(root: str) -> list[str]:
    out = []
    for d, _dirs, files in os.walk(root):
        out.extend(os.path.join(d, f) for f in files if f.endswith(".yaml"))
    return out


def parse(targets: list[str]) -> int:
    import yaml

    files = [f for t in targets for f in (_yaml_files(t) if os.path.isdir(t) else [t])]
    for f in files:
        with open(f, "rb") as fh:
            yaml.load(fh.read(), Loader=yaml.CSafeLoader)
    return 0


def stat(root: str) -> int:
    for f in _yaml_files(root):
        os.stat(f)
    return 0


def listxml(uri: str) -> int:
    import libvirt

    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains(0):
            try:
                dom.XMLDesc(0)
            except libvirt.libvirtError as exc:
                # Another checkout's domain can go between list and fetch (shared daemon).
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
    finally:
        conn.close()
    return 0


def rawapply(spec_path: str, uri: str) -> int:
    """SPEC: JSON list of {"xml": ..., "disks": [{"path", "format", "size", "backing",
    "backing_format"}]}, as bench_real.py recorded from virtsync's own apply."""
    import json
    import subprocess

    import libvirt

    spec = json.loads(Path(spec_path).read_text())
    conn = libvirt.open(uri)
    try:
        for vm in spec:
            for d in vm["disks"]:
                Path(d["path"]).parent.mkdir(parents=True, exist_ok=True)
                argv = ["qemu-img", "create", "-q", "-f", d["format"]]
                if d["backing"]:
                    argv += ["-b", d["backing"], "-F", d["backing_format"]]
                argv += [d["path"], str(d["size"])]
                subprocess.run(argv, check=True)
            conn.defineXML(vm["xml"])
    finally:
        conn.close()
    return 0


def main(argv: list[str]) -> int:
    what, args = argv[0], argv[1:]
    if what == "parse":
        return parse(args)
    if what == "stat":
        return stat(args[0])
    if what == "listxml":
        return listxml(args[0])
    if what == "rawapply":
        return rawapply(args[0], args[1])
    if what == "start":
        import argparse

        argparse.ArgumentParser(prog="floor").parse_args([])
        return 0
    raise SystemExit(f"unknown floor {what!r}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
