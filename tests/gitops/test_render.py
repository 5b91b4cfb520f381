"""`virtsync render` through the CLI: deterministic bytes, what goes out and what does not,
`--out` with its kustomization, and nothing on stdout for a tree that must not deploy."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from render_helpers import EXAMPLES, TREE, render
from ruamel.yaml import YAML

from reconciler.core.model import KNOWN_KINDS, VIRTSYNC_GROUP
from reconciler.render.manifests import GENERATED_MARK, KIND_ORDER, to_yaml

# The reason a missing kubectl skips; ALLOWED_CI_SKIPS in tests/ci_strict.py declares it.
KUBECTL_SKIP = "optional tool: kubectl not installed"


def _stream(*args: str, **kw: Any) -> bytes:
    done = render(*args, **kw)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _docs(stream: bytes) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(stream.decode("utf-8")))


def _yaml12(text: str) -> list[Any]:
    """Read as kubectl and kustomize do: YAML 1.2 (ruamel's default)."""
    return list(YAML(typ="safe", pure=True).load_all(io.StringIO(text)))


# --- determinism ----------------------------------------------------------------------

@pytest.mark.parametrize("tree", [TREE, EXAMPLES], ids=["fixture", "examples"])
def test_render_twice_is_byte_identical(tree: Path) -> None:
    first, second = _stream(str(tree)), _stream(str(tree))
    assert first == second
    assert first.endswith(b"\n") and b"\r" not in first
    assert not first.startswith(b"---")


def _shuffled_copy(dst: Path) -> Path:
    """The fixture tree with other file names, other folders and each file's documents in
    reverse order: the file walk and document order differ, the objects do not."""
    for i, src in enumerate(sorted(TREE.rglob("*.yaml"))):
        docs = src.read_text(encoding="utf-8").split("\n---\n")
        target = dst / f"z{9 - i}" / f"{i}-{src.stem}.yml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n---\n".join(reversed(docs)).rstrip("\n") + "\n", encoding="utf-8")
    return dst


def test_render_ignores_file_order_hash_seed_cwd_and_locale(tmp_path: Path) -> None:
    reference = _stream(str(TREE))
    copy = _shuffled_copy(tmp_path / "copy")
    variants = [
        _stream(str(copy), env={"PYTHONHASHSEED": "1"}),
        _stream(str(copy), env={"PYTHONHASHSEED": "4242"}),
        _stream(".", cwd=copy, env={"PYTHONHASHSEED": "7"}),
        # The fixture holds non-ASCII text: a Latin-1 or C locale must not change a byte.
        _stream(str(copy), env={"PYTHONIOENCODING": "latin-1", "LC_ALL": "C", "LANG": "C"}),
    ]
    assert all(v == reference for v in variants)


# --- content --------------------------------------------------------------------------

def test_stream_holds_kubevirt_objects_in_kind_order_without_virtsync_kinds() -> None:
    docs = _docs(_stream(str(TREE)))
    keys = [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
            for d in docs]
    assert keys == [
        ("VirtualMachineClusterInstancetype", "", "u1.small"),
        ("VirtualMachineClusterPreference", "", "linux"),
        ("VirtualMachineInstancetype", "prod", "db-size"),
        ("DataVolume", "prod", "db-root"),
        ("VirtualMachine", "dev", "app"),
        ("VirtualMachine", "prod", "db"),
    ]
    assert keys == sorted(keys, key=lambda k: (KIND_ORDER.index(k[0]), k[1], k[2]))
    assert all(d["apiVersion"].split("/")[0] != "virtsync.io" for d in docs)  # no Cluster


def test_bodies_are_git_verbatim_identity_included() -> None:
    # Rule 17: the identity pinned in git reaches KubeVirt unchanged, as strings, read
    # by a YAML 1.1 reader (virtsync, PyYAML) and a YAML 1.2 one (kubectl) alike.
    text = _stream(str(TREE)).decode("utf-8")
    for docs in (_docs(text.encode()), _yaml12(text)):
        db = docs[-1]
        source = yaml.safe_load((TREE / "vms" / "prod.yaml").read_text().split("\n---\n")[0])
        assert db == source
        domain = db["spec"]["template"]["spec"]["domain"]
        assert domain["firmware"] == {"uuid": "0b7d4c83-2e0c-4a53-9d1e-6a3f1f2b9c10",
                                      "serial": "1e3"}
        assert domain["devices"]["disks"][0]["serial"] == "0755"
        assert domain["devices"]["interfaces"][0]["macAddress"] == "52:54:00:ab:cd:01"
        assert db["metadata"]["labels"]["enabled"] == "yes"
        # KubeVirt snapshots instancetypes itself: no virtsync revisionName is added.
        assert "revisionName" not in db["spec"]["instancetype"]


def test_data_volume_templates_stay_inside_their_vm() -> None:
    docs = _docs(_stream(str(EXAMPLES)))
    web = next(d for d in docs if d["metadata"]["name"] == "web")
    assert [t["metadata"]["name"] for t in web["spec"]["dataVolumeTemplates"]] == ["web-data"]
    volumes = [d["metadata"]["name"] for d in docs if d["kind"] == "DataVolume"]
    assert volumes == ["tiny-data"]  # the standalone one; KubeVirt creates web-data


VALUES_OTHER_TYPES = ["1e3", "1E-2", ".5", "0o17", "0755", "0x1F", "1_000", "+1", "-.inf",
                      ".NaN", "yes", "No", "on", "OFF", "y", "null", "~", "", "true",
                      "52:54:00:12:34:56", "1:20", "2024-01-01", "2024-01-01T10:00:00Z",
                      "=", "<<", "- x", "a: b", "#x", "'q'", '"d"', " lead", "trail ",
                      "multi\nline\n", "no newline at end\nx", "tab\there",
                      # line breaks for YAML 1.1 only: a literal block would change them
                      "nel\x85x\n", "ls\u2028x\ny", "crlf\r\nx\n", "\n\x85"]


@pytest.mark.parametrize("value", VALUES_OTHER_TYPES)
def test_strings_stay_strings_for_yaml_11_and_12(value: str) -> None:
    text = to_yaml({"v": value, "n": 1, "b": True, "z": None})
    for read in (yaml.safe_load(text), _yaml12(text)[0]):
        assert read == {"v": value, "n": 1, "b": True, "z": None}


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(min_size=1), st.one_of(st.text(), st.integers(), st.booleans(),
                                                     st.none()), max_size=4))
def test_any_json_round_trips_through_both_yaml_versions(body: dict[str, Any]) -> None:
    text = to_yaml(body)
    assert yaml.safe_load(text) == body
    assert _yaml12(text)[0] == body


# --- --out ----------------------------------------------------------------------------

def test_out_writes_one_file_per_object_and_a_kustomization(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    done = render(str(TREE), "--out", str(out))
    assert done.returncode == 0 and done.stdout == b"", done.stderr.decode()
    index = (out / "kustomization.yaml").read_text(encoding="utf-8")
    assert index.startswith(GENERATED_MARK + "\n")
    files = yaml.safe_load(index)["resources"]
    assert files == [
        "virtualmachineclusterinstancetype_u1.small.yaml",
        "virtualmachineclusterpreference_linux.yaml",
        "virtualmachineinstancetype_prod_db-size.yaml",
        "datavolume_prod_db-root.yaml",
        "virtualmachine_dev_app.yaml",
        "virtualmachine_prod_db.yaml",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, "kustomization.yaml"])
    joined = "---\n".join((out / f).read_text(encoding="utf-8") for f in files)
    assert joined.encode("utf-8") == _stream(str(TREE))


def test_out_again_drops_what_left_git_and_keeps_other_files(tmp_path: Path) -> None:
    tree = shutil.copytree(TREE, tmp_path / "tree")
    out = tmp_path / "rendered"
    assert render(str(tree), "--out", str(out)).returncode == 0
    (out / "README.md").write_text("mine\n")
    (tree / "vms" / "dev.yaml").unlink()
    assert render(str(tree), "--out", str(out)).returncode == 0
    assert not (out / "virtualmachine_dev_app.yaml").exists()
    assert (out / "virtualmachine_prod_db.yaml").exists()
    assert (out / "README.md").read_text() == "mine\n"
    assert "virtualmachine_dev_app.yaml" not in (out / "kustomization.yaml").read_text()


def test_out_refuses_a_kustomization_it_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    own = "resources:\n- mine.yaml\n"
    (out / "kustomization.yaml").write_text(own)
    (out / "mine.yaml").write_text("kind: ConfigMap\n")
    done = render(str(TREE), "--out", str(out))
    assert done.returncode != 0 and done.stdout == b""
    assert b"not written by virtsync render" in done.stderr
    assert (out / "kustomization.yaml").read_text() == own
    assert sorted(p.name for p in out.iterdir()) == ["kustomization.yaml", "mine.yaml"]


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(KUBECTL_SKIP)
    return kubectl


@pytest.mark.parametrize("tree", [TREE, EXAMPLES], ids=["fixture", "examples"])
def test_kubectl_kustomize_of_out_equals_the_stream(tree: Path, tmp_path: Path) -> None:
    kubectl = _kubectl()
    out = tmp_path / "rendered"
    assert render(str(tree), "--out", str(out)).returncode == 0
    built = subprocess.run([kubectl, "kustomize", str(out)], capture_output=True, check=True,
                           timeout=120)
    assert built.stdout == _stream(str(tree))


# Strings kubectl (Go's yaml) prints in every style: quoted as another type, single-quoted
# for syntax, folded plain, single- and double-quoted at 80 columns, escaped, blocks.
# Left out on purpose: NEL/LS/PS, which Go's yaml puts raw into a block (a YAML 1.1
# reader reads another string), and "=" and "<<", which render quotes and Go does not.
AWKWARD = [v for v in VALUES_OTHER_TYPES
           if not any(c in v for c in "\x85\u2028\u2029") and v not in ("=", "<<")] + [
    " ".join(["word"] * 40), "a: b " + "x " * 50, "Grüße — " * 12, "emoji \U0001f389 " * 12,
    "x\ty " * 30, "a" * 79 + " b", "1" * 100 + " 2", "nbsp\xa0here", "bell\x07",
    "#cloud-config\nusers:\n- name: admin \n  shell: /bin/bash\n",
    "#cloud-config\nwrite_files:\n- content: |\n    " + "word " * 30 + "\n  path: /x\n",
    "x" * 30 + " \n" + "y " * 60 + "\n", "two  spaces  " * 10,
]  # Not "\tlead tab\nnext\n": kustomize 5.5 fails on it ("found a tab character where an
#    indentation space is expected"), re-reading its own output; render's reads back.


def test_kubectl_kustomize_prints_awkward_strings_byte_for_byte(tmp_path: Path) -> None:
    kubectl = _kubectl()
    tree = shutil.copytree(TREE, tmp_path / "tree")
    vm = yaml.safe_load((tree / "vms" / "dev.yaml").read_text())
    vm["metadata"]["annotations"] = {f"example.com/v{i:02d}": v for i, v in enumerate(AWKWARD)}
    (tree / "vms" / "dev.yaml").write_text(yaml.safe_dump(vm, allow_unicode=True))
    out = tmp_path / "rendered"
    stream = _stream(str(tree))
    assert render(str(tree), "--out", str(out)).returncode == 0
    built = subprocess.run([kubectl, "kustomize", str(out)], capture_output=True, check=True,
                           timeout=120)
    assert built.stdout.decode() == stream.decode()
    rendered = _docs(stream)[-2]["metadata"]["annotations"]
    assert rendered == vm["metadata"]["annotations"]


# --- nothing on stdout when the tree must not deploy ----------------------------------

INVALID = Path(__file__).resolve().parents[1] / "fixtures" / "invalid"


def _invalid_tree(tmp_path: Path, case: str) -> Path:
    tree = shutil.copytree(TREE, tmp_path / "tree")
    if case == "schema":  # one bad file among good ones
        shutil.copy(INVALID / "schema-runstrategy-enum.yaml", tree / "vms" / "bad.yaml")
    else:  # every file valid alone; two VMs claim one MAC across files (a tree check)
        dev = tree / "vms" / "dev.yaml"
        dev.write_text(dev.read_text().replace("02:00:00:00:00:2a", "52:54:00:ab:cd:01"))
    return tree


@pytest.mark.parametrize("case", ["schema", "tree"])
def test_invalid_tree_prints_nothing_and_fails(tmp_path: Path, case: str) -> None:
    tree = _invalid_tree(tmp_path, case)
    done = render(str(tree))
    assert done.returncode == 1  # findings, as `validate`
    assert done.stdout == b""
    err = done.stderr.decode()
    assert "error" in err and "nothing rendered" in err
    where = ("vms/bad.yaml:10:3: error: spec.runStrategy" if case == "schema"
             else "vms/prod.yaml:34:13: error: spec.template.spec.domain.devices.interfaces")
    assert f"{tree}/{where}" in err, err
    out = tmp_path / "rendered"
    assert render(str(tree), "--out", str(out)).returncode != 0
    assert not out.exists()


@pytest.mark.parametrize(("case", "code"), [("no files", 1), ("only a Cluster", 2),
                                           ("missing path", 2)])
def test_empty_tree_prints_nothing_and_fails(tmp_path: Path, case: str, code: int) -> None:
    tree = tmp_path / "tree"
    if case != "missing path":
        tree.mkdir()
    if case == "only a Cluster":
        shutil.copy(TREE / "cluster.yaml", tree)
    done = render(str(tree))
    assert done.returncode == code
    assert done.stdout == b""
    assert done.stderr.strip()


def test_rendered_stream_is_a_valid_tree_that_renders_to_itself(tmp_path: Path) -> None:
    # The output is itself a valid virtsync tree (identity included), and a fixed point.
    first = _stream(str(TREE))
    (tmp_path / "all.yaml").write_bytes(first)
    assert _stream(str(tmp_path / "all.yaml")) == first


def test_warnings_go_to_stderr_and_change_nothing_on_stdout(tmp_path: Path) -> None:
    tree = shutil.copytree(TREE, tmp_path / "tree")
    (tree / "empty.yaml").write_text("# nothing here yet\n---\n")
    done = render(str(tree))
    assert done.returncode == 0
    assert done.stdout == _stream(str(TREE))
    assert b"empty.yaml" in done.stderr and b"warning" in done.stderr


def test_every_kind_validation_knows_has_a_place_or_is_virtsync_only() -> None:
    # A kind added to validation but not to render would otherwise fail every render
    # (render refuses to drop an object: Argo CD would prune it).
    placed = set(KIND_ORDER)
    for group, kinds in KNOWN_KINDS.items():
        assert kinds <= placed or group == VIRTSYNC_GROUP, (group, kinds - placed)


@pytest.mark.parametrize("out", ["rendered", "deploy/rendered", "."])
def test_out_inside_the_tree_is_refused_unless_ignored(tmp_path: Path, out: str) -> None:
    tree = shutil.copytree(TREE, tmp_path / "tree")
    done = render(str(tree), "--out", str(tree / out))
    assert done.returncode != 0 and done.stdout == b""
    assert b"the next render would read its own output" in done.stderr
    assert not (tree / out / "kustomization.yaml").exists()
    if out == ".":
        return
    (tree / ".virtsyncignore").write_text(f"# rendered output\n{out.split('/')[0]}/\n")
    for _ in range(2):  # the second render does not read the first one's output
        done = render(str(tree), "--out", str(tree / out))
        assert done.returncode == 0, done.stderr.decode()
    assert _docs(_stream(str(tree))) == _docs(_stream(str(TREE)))
