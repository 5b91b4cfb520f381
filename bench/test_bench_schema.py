"""Per-document cost of schema + semantic checks on a typical ~110-line VM (bench/vmgen).

    .venv/bin/pytest bench/test_bench_schema.py --benchmark-columns=min,median,mean

The budget: `validate` over 10,000 VMs within 3× the CSafeLoader parse (~0.6 ms/file), so
schema + semantic + facts must stay well under ~0.5 ms per document. The python-jsonschema
case is here to show why jsonschema-rs does the fast path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from reconciler.check import schema, semantic
from reconciler.core.model import Manifest, SourceRef

sys.path.insert(0, str(Path(__file__).parent))
import vmgen

TEXT = vmgen.render(42)
BODY: Any = yaml.load(TEXT, Loader=yaml.CSafeLoader)


def _manifest(body: Any) -> Manifest:
    meta = body["metadata"]
    return Manifest(body["apiVersion"], body["kind"], meta["namespace"], meta["name"], body,
                    SourceRef("vm-00042.yaml"))


VM = _manifest(BODY)


def _broken() -> Manifest:
    body = yaml.load(TEXT.replace("runStrategy:", "runStrategy: no #")
                     .replace('macAddress: "02:00:00:00:2a:01"', "macAddress: 52:54:00:00:20:01")
                     .replace("cores:", "corez:"), Loader=yaml.CSafeLoader)
    return _manifest(body)


BROKEN = _broken()


def test_document_is_typical() -> None:
    assert 100 <= len(TEXT.splitlines()) <= 125
    assert schema.check_schema(VM) == [] and semantic.check_manifest(VM) == []
    assert [i.rule for i in schema.check_schema(BROKEN)] == [
        "schema.yaml11-coercion", "schema.unknown-field", "schema.yaml11-coercion"]


def test_parse_csafeloader_reference(benchmark: Any) -> None:
    benchmark(yaml.load, TEXT, Loader=yaml.CSafeLoader)


def test_check_schema_valid(benchmark: Any) -> None:
    assert benchmark(schema.check_schema, VM) == []


def test_check_manifest(benchmark: Any) -> None:
    assert benchmark(semantic.check_manifest, VM) == []


def test_facts(benchmark: Any) -> None:
    # The VM's name, its DataVolume, firmware UUID and serial, two MACs, the data disk's
    # serial (disk serials became unique claims after this bench was written).
    kinds = sorted(c.what for c in benchmark(semantic.facts, VM).claims)
    assert kinds == ["DataVolume", "MAC address", "MAC address", "disk serial",
                     "firmware serial", "firmware uuid", "object"]


def test_schema_semantic_facts_per_document(benchmark: Any) -> None:
    def all_checks(m: Manifest) -> Any:
        issues = schema.check_schema(m)
        if not issues:
            issues = semantic.check_manifest(m)
        return issues, semantic.facts(m)

    issues, _ = benchmark(all_checks, VM)
    assert issues == []


def test_check_schema_invalid_document(benchmark: Any) -> None:
    assert len(benchmark(schema.check_schema, BROKEN)) == 3


@pytest.mark.parametrize("name", ["virtualmachine.schema.json"])
def test_python_jsonschema_for_comparison(benchmark: Any, name: str) -> None:
    doc = json.loads((schema.SCHEMA_DIR / name).read_text())
    validator = jsonschema.Draft202012Validator(doc)
    assert benchmark(validator.is_valid, BODY) is True
