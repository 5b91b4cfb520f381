"""examples/argocd/plugin.yaml run the way Argo CD's repo server runs it: its `discover`
and `generate` commands (command + args, as the cmp-server executes them) in a temporary
copy of a repository, cwd = the Application's source path, with the ARGOCD_APP_* and
ARGOCD_ENV_* variables set. stdout must split into valid objects (VirtualMachines and
the other kinds checked against the KubeVirt and CDI OpenAPI); a tree that must not
deploy prints nothing and fails. Plus the sidecar patch and the Containerfile, checked
statically (no image is built and no Argo CD runs here)."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from refdata import REFERENCE
from render_helpers import EXAMPLES, REPO, TREE, render

ARGOCD = REPO / "examples" / "argocd"
PLUGIN = yaml.safe_load((ARGOCD / "plugin.yaml").read_text(encoding="utf-8"))
CONFIG_PATH = "/home/argocd/cmp-server/config/plugin.yaml"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """`virtsync` on PATH, as the sidecar image installs it, running this checkout."""
    folder = tmp_path / "bin"
    folder.mkdir()
    shim = folder / "virtsync"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m reconciler "$@"\n')
    shim.chmod(0o755)
    return folder


def _repo(tmp_path: Path, tree: Path, source_path: str) -> Path:
    """A temporary copy of a repository holding `tree` at `source_path`; the app dir."""
    app = tmp_path / "repo" / source_path
    shutil.copytree(tree, app, ignore=shutil.ignore_patterns("argocd", "flux", "ci"))
    return app


def _run(step: str, app: Path, bin_dir: Path, source_path: str,
         env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    spec = PLUGIN["spec"][step]
    spec = spec["find"] if step == "discover" else spec
    argv = [*spec["command"], *spec.get("args", [])]
    full = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(app.parent), "PYTHONPATH": str(REPO),
        "ARGOCD_APP_NAME": "vms", "ARGOCD_APP_NAMESPACE": "argocd",
        "ARGOCD_APP_PROJECT_NAME": "default", "ARGOCD_APP_REVISION": REVISION,
        "ARGOCD_APP_REVISION_SHORT": REVISION[:7], "ARGOCD_APP_SOURCE_PATH": source_path,
        "ARGOCD_APP_SOURCE_REPO_URL": "https://git.example.com/infra.git",
        "ARGOCD_APP_SOURCE_TARGET_REVISION": "main", "KUBE_VERSION": "1.32.0",
        **(env or {}),
    }
    return subprocess.run(argv, cwd=app, env=full, capture_output=True, check=False,
                          timeout=120)


# --- OpenAPI ------------------------------------------------------------------------

# (group, kind) → (OpenAPI file, definition)
DEFINITIONS = {
    ("kubevirt.io", "VirtualMachine"): ("kubevirt", "v1.VirtualMachine"),
    ("instancetype.kubevirt.io", "VirtualMachineInstancetype"):
        ("kubevirt", "v1beta1.VirtualMachineInstancetype"),
    ("instancetype.kubevirt.io", "VirtualMachineClusterInstancetype"):
        ("kubevirt", "v1beta1.VirtualMachineClusterInstancetype"),
    ("instancetype.kubevirt.io", "VirtualMachinePreference"):
        ("kubevirt", "v1beta1.VirtualMachinePreference"),
    ("instancetype.kubevirt.io", "VirtualMachineClusterPreference"):
        ("kubevirt", "v1beta1.VirtualMachineClusterPreference"),
    ("cdi.kubevirt.io", "DataVolume"): ("containerized-data-importer", "v1beta1.DataVolume"),
}


def _closed(definitions: dict[str, Any]) -> dict[str, Any]:
    """The definitions with unknown fields refused (OpenAPI 2 allows them; the API server
    prunes or rejects them): a field KubeVirt does not know fails here."""
    out = {}
    for name, schema in definitions.items():
        if "properties" in schema and "additionalProperties" not in schema:
            schema = {**schema, "additionalProperties": False}
        out[name] = schema
    return out


@functools.cache
def _validator(api: str, definition: str) -> jsonschema.Draft4Validator:
    swagger = json.loads((REFERENCE / api / "swagger.json").read_text(encoding="utf-8"))
    schema = {"$ref": f"#/definitions/{definition}",
              "definitions": _closed(swagger["definitions"])}
    return jsonschema.Draft4Validator(schema)


def _check_openapi(doc: dict[str, Any]) -> None:
    api, definition = DEFINITIONS[(doc["apiVersion"].split("/")[0], doc["kind"])]
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in _validator(api, definition).iter_errors(doc)]
    assert not errors, (doc["kind"], doc["metadata"]["name"], errors)


def _split(stdout: bytes) -> list[dict[str, Any]]:
    """As the repo server splits a plugin's output: YAML documents, each an object."""
    text = stdout.decode("utf-8")
    chunks = re.split(r"^---$", text, flags=re.MULTILINE)
    docs = [yaml.safe_load(c) for c in chunks]
    assert all(isinstance(d, dict) for d in docs), docs
    for d in docs:
        assert d["apiVersion"] and d["kind"] and d["metadata"]["name"]
    return docs


needs_openapi = pytest.mark.skipif(not (REFERENCE / "kubevirt" / "swagger.json").exists(),
                                   reason="upstream OpenAPI specs not available")


# --- generate -----------------------------------------------------------------------

@needs_openapi
@pytest.mark.parametrize("tree", [EXAMPLES, TREE], ids=["examples", "fixture"])
def test_generate_prints_objects_kubevirt_accepts(tmp_path: Path, bin_dir: Path,
                                                  tree: Path) -> None:
    app = _repo(tmp_path, tree, "clusters/lab")
    done = _run("generate", app, bin_dir, "clusters/lab")
    assert done.returncode == 0, done.stderr.decode()
    docs = _split(done.stdout)
    assert {d["kind"] for d in docs} >= {"VirtualMachine", "DataVolume"}
    for doc in docs:
        _check_openapi(doc)
    assert done.stdout == render(str(tree)).stdout  # what the CLI prints, byte for byte
    assert b"rendering clusters/lab/. for vms at " + REVISION.encode() in done.stderr


@needs_openapi
def test_openapi_check_refuses_an_unknown_field() -> None:
    # The check above is strict: a field KubeVirt does not define fails it.
    vm = _split(render(str(EXAMPLES)).stdout)[-1]
    vm["spec"]["template"]["spec"]["domain"]["cpu"]["coresPerSocket"] = 2
    with pytest.raises(AssertionError, match="coresPerSocket"):
        _check_openapi(vm)


def test_generate_honours_a_sub_path_and_target(tmp_path: Path, bin_dir: Path) -> None:
    # Two trees below the source path: the setting picks one.
    app = tmp_path / "repo" / "apps"
    _repo(tmp_path, EXAMPLES, "apps/vms")
    _repo(tmp_path, TREE, "apps/staging")
    done = _run("generate", app, bin_dir, "apps",
                {"ARGOCD_ENV_VIRTSYNC_PATH": "vms", "ARGOCD_ENV_VIRTSYNC_TARGET": "kubevirt"})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == render(str(EXAMPLES)).stdout


OUTSIDE = b"must be a relative path inside the application's source path (apps)"


@pytest.mark.parametrize(("env", "says"), [
    ({"ARGOCD_ENV_VIRTSYNC_PATH": "../other-app"}, OUTSIDE),
    ({"ARGOCD_ENV_VIRTSYNC_PATH": "vms/../../other-app"}, OUTSIDE),
    ({"ARGOCD_ENV_VIRTSYNC_PATH": "{other}"}, OUTSIDE),  # its absolute path
    ({"ARGOCD_ENV_VIRTSYNC_PATH": "missing"}, b"missing"),
    ({"ARGOCD_ENV_VIRTSYNC_TARGET": "openshift"}, b"invalid choice: 'openshift'"),
], ids=["parent", "climbs-out", "absolute", "missing", "bad-target"])
def test_generate_refuses_bad_settings_with_nothing_on_stdout(
        tmp_path: Path, bin_dir: Path, env: dict[str, str], says: bytes) -> None:
    # A valid tree beside the app: reading it would succeed, so only the guard refuses.
    app = _repo(tmp_path, EXAMPLES, "apps")
    other = shutil.copytree(TREE, tmp_path / "repo" / "other-app")
    env = {k: v.replace("{other}", str(other)) for k, v in env.items()}
    done = _run("generate", app, bin_dir, "apps", env)
    assert done.returncode != 0
    assert done.stdout == b""
    assert says in done.stderr, done.stderr.decode()


@pytest.mark.parametrize("case", ["invalid", "empty", "only-cluster"])
def test_generate_fails_with_nothing_on_stdout(tmp_path: Path, bin_dir: Path,
                                               case: str) -> None:
    app = tmp_path / "repo" / "apps"
    if case == "invalid":
        _repo(tmp_path, TREE, "apps")
        vm = app / "vms" / "dev.yaml"
        vm.write_text(vm.read_text().replace("runStrategy: Always", "runStrategy: Sometimes"))
    else:
        app.mkdir(parents=True)
        if case == "only-cluster":
            shutil.copy(TREE / "cluster.yaml", app)
    done = _run("generate", app, bin_dir, "apps")
    assert done.returncode != 0
    assert done.stdout == b""
    if case == "invalid":
        assert b"vms/dev.yaml:7:3: error: spec.runStrategy" in done.stderr


# --- discover -----------------------------------------------------------------------

def _other_tree(root: Path, marker: str) -> Path:
    root.mkdir(parents=True)
    (root / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                                  "data:\n  note: 'apiVersion: virtsync.io/v1alpha1'\n")
    if marker == "cluster-nested":
        (root / "deep" / "er").mkdir(parents=True)
        (root / "deep" / "er" / "c.yml").write_text(
            '# nodes\napiVersion: "virtsync.io/v1alpha1"\nkind: Cluster\n')
    return root


@pytest.mark.parametrize("where", ["examples", "fixture", "cluster-nested"])
def test_discover_matches_a_virtsync_tree(tmp_path: Path, bin_dir: Path, where: str) -> None:
    if where == "cluster-nested":
        app = _other_tree(tmp_path / "repo" / "apps", where)
    else:
        app = _repo(tmp_path, EXAMPLES if where == "examples" else TREE, "apps")
    done = _run("discover", app, bin_dir, "apps")
    assert done.returncode == 0 and done.stdout.strip(), done.stderr.decode()


def test_discover_leaves_other_trees_alone(tmp_path: Path, bin_dir: Path) -> None:
    # Plain Kubernetes YAML, and one that mentions virtsync only inside a value.
    app = _other_tree(tmp_path / "repo" / "apps", "none")
    done = _run("discover", app, bin_dir, "apps")
    assert done.stdout.strip() == b""


# --- the sidecar, statically ----------------------------------------------------------

def test_plugin_config_is_a_v2_plugin() -> None:
    assert (PLUGIN["apiVersion"], PLUGIN["kind"]) == ("argoproj.io/v1alpha1",
                                                     "ConfigManagementPlugin")
    assert PLUGIN["metadata"]["name"] == "virtsync"
    assert PLUGIN["spec"]["generate"]["command"][:2] == ["sh", "-c"]
    assert "virtsync render" in PLUGIN["spec"]["generate"]["command"][2]


def _instructions(text: str) -> list[tuple[str, str]]:
    """A Containerfile as (INSTRUCTION, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_containerfile_installs_virtsync_as_user_999_with_the_plugin_config() -> None:
    steps = _instructions((ARGOCD / "Containerfile").read_text(encoding="utf-8"))
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    final = steps[last_from:]
    assert re.fullmatch(r"\S*python:3\.\d+-slim", final[0][1])
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] == "999"
    copies = [args.split() for word, args in final if word == "COPY"]
    config = [c for c in copies if c[-1] == CONFIG_PATH]
    assert len(config) == 1
    source = config[0][-2]
    assert (REPO / source).resolve() == (ARGOCD / "plugin.yaml").resolve()
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "virtsync-*.whl" in runs and re.search(r"pip install .*virtsync", runs)
    assert not any(word in ("ENTRYPOINT", "CMD") for word, _ in final)


def test_repo_server_patch_runs_the_cmp_server_as_999() -> None:
    patch = yaml.safe_load((ARGOCD / "repo-server-patch.yaml").read_text(encoding="utf-8"))
    assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", "argocd-repo-server")
    pod = patch["spec"]["template"]["spec"]
    (sidecar,) = pod["containers"]
    assert sidecar["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert sidecar["securityContext"]["runAsUser"] == 999
    assert sidecar["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert mounts == {"var-files": "/var/run/argocd",
                      "plugins": "/home/argocd/cmp-server/plugins", "cmp-tmp": "/tmp"}
    # The config is baked into the image, not mounted over it.
    assert not any(m["mountPath"].startswith("/home/argocd/cmp-server/config")
                   for m in sidecar["volumeMounts"])
    assert [v["name"] for v in pod["volumes"]] == ["cmp-tmp"]  # the others are stock
