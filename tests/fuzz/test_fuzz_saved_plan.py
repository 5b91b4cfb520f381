"""Fuzzing tampered saved plans (safety rule 15): a real plan file, with any field or leaf
changed, removed, added or reordered, is run with `virtsync apply --plan` (the CLI entry
point, in process) on libvirt's test driver with every permission flag. None may execute:
non-zero exit, a message naming what is wrong, and no domain, disk file or state file
changed.

The plan covers every action and class: create+start, a restart, a label update, a stop,
a prune that deletes disks (data-loss) and one that keeps them; a second source folder
supplies foreign keys to retarget deletions at. Examples: VIRTSYNC_FUZZ_PLAN_EXAMPLES
(default 200, derandomized; the count is printed at the end, pytest -s).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from e2e.test_apply_testdriver import URI, Tree, vm
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.cli.plan_cmd import plan_from_host
from reconciler.core.statedir import state_dir
from reconciler.execute.inventory import Inventory, source_id
from reconciler.planning.plan_model import ACTIONS
from reconciler.planning.savedplan import check_saved_plan

EXAMPLES = int(os.environ.get("VIRTSYNC_FUZZ_PLAN_EXAMPLES", "200"))
# No shrinking: after a plan that executed, the live state is no longer the plan's, so
# the first failing example is the one to read.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TRIED: dict[str, int] = {}
FLAGS = ("--allow-restart", "--allow-data-loss", "--force-stop")
# What a refusal says (each names the field, key or exception at fault).
REFUSALS = {"differs from the plan re-derived": "mismatch", "stale plan": "stale",
            "not in this source's inventory": "prune scope", "malformed plan file": "malformed",
            "not a virtsync plan file": "format"}


@dataclass
class Scene:
    conn: Any
    root: Path  # source A: the plan's folder
    plan: dict[str, Any]  # the saved plan file's JSON, untampered
    plan_file: Path
    watched: tuple[Path, ...]  # storage and state directories
    vm_keys: tuple[str, ...]  # own and foreign VM keys, to retarget at


def snapshot(s: Scene) -> tuple[Any, ...]:
    doms = {d.name(): (d.XMLDesc(), d.isActive(), d.ID()) for d in s.conn.listAllDomains()}
    # The validation cache (state/cache) is no state: any run that validates may write it,
    # and every entry is re-verified by content hash (docs/validate.md).
    disk = {str(p): (p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino)
            for root in s.watched for p in sorted(root.rglob("*"))
            if p.is_file() and "cache" not in p.relative_to(root).parts[:1]}
    return doms, disk


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("fuzzplan")
    conn = libvirt.open(URI)  # keeps the test driver's state for the module
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIRTSYNC_STATE_DIR", str(tmp / "state"))
        a, b = Tree(tmp / "repo-a", tmp / "storage"), Tree(tmp / "repo-b", tmp / "storage")
        for name in ("web", "lab", "halt", "gone"):
            a.put(vm(name))
        a.put(vm("wipe", annotations={"virtsync.io/disk-policy": "Delete"}))
        b.put(vm("bravo"))
        assert main(["apply", str(a.root)]) == 0
        assert main(["apply", str(b.root)]) == 0
        a.put(vm("web", cores=2))  # restart
        lab = vm("lab")
        lab["metadata"]["labels"] = {"tier": "x"}
        a.put(lab)  # update, no disruption
        a.put(vm("halt", run="Halted"))  # stop
        a.put(vm("new"))  # create + start
        a.remove("gone")  # prune, disks kept
        a.remove("wipe")  # prune with disks: data-loss
        plan_file = tmp / "plan.json"
        assert main(["plan", str(a.root), "--prune", "--out-file", str(plan_file)]) == 1
        doc = json.loads(plan_file.read_text())
        # (no migrate: the test driver cannot live-migrate)
        assert {a for c in doc["changes"] for a in c["actions"]} == set(ACTIONS) - {"replace", "migrate"}
        # Untampered, the file passes the check: every refusal below is the tampering's.
        inventory = Inventory.load(state_dir(), source_id(a.root))
        check_saved_plan(doc, plan_from_host(str(a.root), prune=True),
                         inventory.entries.keys(), "scene")
        keys = tuple(f"VirtualMachine/e2e/{n}" for n in
                     ("web", "lab", "halt", "gone", "wipe", "new", "bravo", "other"))
        yield Scene(conn, a.root, doc, plan_file, (tmp / "storage", tmp / "state"), keys)
    for dom in conn.listAllDomains():
        if dom.name().startswith("e2e_"):
            if dom.isActive():
                dom.destroy()
            dom.undefine()
    conn.close()


# --- mutations -------------------------------------------------------------------------

Path_ = tuple[str | int, ...]
LABELS = ["none", "live", "restart", "replace", "data-loss"]


def _paths(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _values(keys: tuple[str, ...]) -> st.SearchStrategy[Any]:
    names = [k.rsplit("/", 1)[1] for k in keys]
    scalars = st.one_of(
        st.sampled_from(LABELS + list(ACTIONS) + list(keys) + names
                        + ["e2e", "other", "VirtualMachine", "DataVolume", "libvirt",
                           "kubevirt", "libvirt:no-prune", "libvirt:prune", "1", "2", "",
                           "sha256:" + "0" * 64, "(sensitive)", "add", "remove", "change"]),
        st.none(), st.booleans(), st.integers(-3, 3), st.integers(),
        st.floats(allow_nan=False), st.text(max_size=12))
    return st.one_of(
        scalars,
        st.lists(st.sampled_from(ACTIONS), min_size=0, max_size=3, unique=True),
        st.recursive(scalars, lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner,
                                                         max_size=3)), max_leaves=6))


def _fmt(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


@st.composite
def tampered(draw: st.DrawFn, original: dict[str, Any],
             keys: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """The plan with 1-3 edits, and what each did ('replace <path>' for a replaced value)."""
    doc = copy.deepcopy(original)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        # Any leaf, or (as often) one outside the many field diffs: classes, actions,
        # keys, counts, fingerprints, the identity notes.
        paths = _paths(doc)
        if draw(st.booleans()):
            paths = [p for p in paths if "fields" not in p] or paths
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add",
                                   "duplicate", "swap", "retarget", "actions",
                                   "fingerprint"]))
        done.append(f"replace {_fmt(path)}" if op == "replace" else op)
        if op == "retarget" or op == "actions":
            changes = doc.get("changes")
            if not isinstance(changes, list) or not changes or \
                    not isinstance(changes[-1], dict):
                continue
            c = draw(st.sampled_from([c for c in changes if isinstance(c, dict)]))
            if op == "retarget":  # a deletion aimed at another object
                key = draw(st.sampled_from(keys))
                c.update(key=key, name=key.rsplit("/", 1)[1])
                c["actions"] = draw(st.sampled_from([["delete"], c.get("actions")]))
            else:
                c["actions"] = draw(st.lists(st.sampled_from(ACTIONS), min_size=1,
                                             max_size=3, unique=True))
                c["disruption"] = draw(st.sampled_from([*LABELS, c.get("disruption")]))
        elif op == "fingerprint":  # plausible values: another hash, commit or source
            fp = doc.get("fingerprints")
            side = fp.get(draw(st.sampled_from(["desired", "live"]))) \
                if isinstance(fp, dict) else None
            if isinstance(side, dict) and side:
                side[draw(st.sampled_from(sorted(side)))] = draw(st.sampled_from(
                    [None, "sha256:" + "1" * 64, "0" * 40, "libvirt:no-prune",
                     "libvirt:prune", "git:origin/main@" + "0" * 40]))
        elif not path:
            continue
        elif op == "replace":
            parent[path[-1]] = draw(_values(keys))
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["force", "delete_disks", "extra", "prune"]))] = \
                draw(_values(keys))
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), copy.deepcopy(parent[path[-1]]))
        elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
            j = draw(st.integers(0, len(parent) - 1))
            i = int(path[-1])
            parent[i], parent[j] = parent[j], parent[i]
    return doc, done


def canonical(doc: Any) -> str:
    """Independent of the code under test: JSON text keeps 1, 1.0 and true apart."""
    return json.dumps(doc, sort_keys=True)


def run_apply(s: Scene, flags: list[str]) -> tuple[int, str]:
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["apply", str(s.root), "--plan", str(s.plan_file), "--prune",
                   "--max-prune", "10", "--auto-approve", *flags])
    return rc, err.getvalue()


@st.composite
def cases(draw: st.DrawFn, s: Scene) -> tuple[dict[str, Any], list[str], list[str]]:
    doc, done = draw(tampered(s.plan, s.vm_keys))
    flags = draw(st.lists(st.sampled_from(FLAGS), unique=True))
    return doc, done, flags


def test_tampered_plans_never_execute(scene: Scene) -> None:
    before = snapshot(scene)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIRTSYNC_STATE_DIR", str(scene.watched[1]))

        @FUZZ
        @given(cases(scene))
        def one(case: tuple[dict[str, Any], list[str], list[str]]) -> None:
            doc, done, flags = case
            assume(canonical(doc) != canonical(scene.plan))
            scene.plan_file.write_text(json.dumps(doc))
            rc, err = run_apply(scene, flags)
            kind = next((v for k, v in REFUSALS.items() if k in err), None)
            TRIED[kind or "?"] = TRIED.get(kind or "?", 0) + 1
            assert rc != 0, err
            assert kind is not None, err
            assert "internal error" not in err, err
            if kind == "mismatch" and len(done) == 1 and done[0].startswith("replace "):
                assert done[0].removeprefix("replace ") in err, err  # names the field
            assert snapshot(scene) == before, err

        one()
    assert sum(TRIED.values()) >= min(EXAMPLES, 50)


def test_untampered_plan_executes(scene: Scene) -> None:
    # Runs last: the same file, untouched, is applied (the fuzz did not refuse everything).
    scene.plan_file.write_text(json.dumps(scene.plan))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIRTSYNC_STATE_DIR", str(scene.watched[1]))
        rc, err = run_apply(scene, list(FLAGS))
    assert rc == 0, err
    names = {d.name() for d in scene.conn.listAllDomains() if d.name().startswith("e2e_")}
    assert names == {"e2e_web", "e2e_lab", "e2e_halt", "e2e_new", "e2e_bravo"}
    print(f"\ntampered saved plans run: {sum(TRIED.values())} {TRIED}")
