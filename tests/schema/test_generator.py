"""tools/gen_schemas.py: committed schemas are current, and the output is well-formed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from refdata import REFERENCE

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "tools" / "gen_schemas.py"
SCHEMAS = sorted((ROOT / "schemas").glob("*.schema.json"))
GENERATED = [p for p in SCHEMAS if p.name not in ("cluster.schema.json", "plan.schema.json",
                                                  "readiness.schema.json")]

needs_reference = pytest.mark.skipif(not (REFERENCE / "kubevirt" / "swagger.json").exists(),
                                     reason="upstream OpenAPI specs not available")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GEN), *args], capture_output=True, text=True,
                          check=False)


@needs_reference
def test_committed_schemas_are_current() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stderr


@needs_reference
def test_check_fails_on_a_stale_schema(tmp_path: Path) -> None:
    for p in GENERATED:
        shutil.copy(p, tmp_path / p.name)
    stale = tmp_path / "virtualmachine.schema.json"
    stale.write_text(stale.read_text().replace('"RerunOnFailure"', '"Sometimes"'))
    result = _run("--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "virtualmachine.schema.json" in result.stderr
    # Regenerating repairs it.
    assert _run("--out", str(tmp_path)).returncode == 0
    assert _run("--check", "--out", str(tmp_path)).returncode == 0


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for key, value in node.items():
            if key != "$defs":
                found |= _refs(value)
        for value in node.get("$defs", {}).values():
            found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12_and_self_contained(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    refs = _refs(schema)
    assert all(r.startswith("#/$defs/") for r in refs), refs
    defs = set(schema.get("$defs", {}))
    used = {r.removeprefix("#/$defs/") for r in refs}
    assert used <= defs, used - defs          # every reference resolves inside the file
    assert defs <= used, defs - used          # and only reachable definitions are kept


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: p.name)
def test_generated_objects_reject_unknown_fields_but_maps_stay_open(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["additionalProperties"] is False
    meta = schema["$defs"]["virtsync.RootObjectMeta"]
    assert meta["required"] == ["name"]
    assert meta["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    for name, node in schema["$defs"].items():
        if "properties" in node:
            assert node.get("additionalProperties") is False, name
