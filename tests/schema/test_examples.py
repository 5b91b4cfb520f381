"""Every upstream example of a kind virtsync handles passes schema and semantic checks."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from refdata import REFERENCE
from schema_helpers import manifest

from reconciler.check import schema, semantic

SOURCES = (
    "kubevirt/examples/*.yaml",
    "common-instancetypes/**/*.yaml",
    "containerized-data-importer/examples/*.yaml",
    "argocd-kubevirt-health/**/testdata/*.yaml",
)


def _documents() -> list[tuple[str, Any]]:
    docs: list[tuple[str, Any]] = []
    for pattern in SOURCES:
        for path in sorted(REFERENCE.glob(pattern)):
            with path.open("rb") as fh:
                loaded = list(yaml.load_all(fh, Loader=yaml.CSafeLoader))
            for i, doc in enumerate(loaded):
                if (isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str)
                        and schema.has_schema(doc["apiVersion"], str(doc.get("kind")))):
                    docs.append((f"{path.relative_to(REFERENCE)}#{i}", doc))
    return docs


DOCUMENTS = _documents()


@pytest.mark.skipif(not REFERENCE.exists(), reason="reference data not available")
def test_reference_holds_every_kind() -> None:
    kinds = {doc["kind"] for _, doc in DOCUMENTS}
    assert {"VirtualMachine", "VirtualMachineInstancetype", "VirtualMachineClusterInstancetype",
            "VirtualMachinePreference", "DataVolume"} <= kinds
    assert len(DOCUMENTS) >= 100
    # Live objects with status are among them (they must be accepted, status ignored).
    assert any("status" in doc for _, doc in DOCUMENTS if doc["kind"] == "VirtualMachine")


@pytest.mark.parametrize(("where", "doc"), DOCUMENTS, ids=[w for w, _ in DOCUMENTS])
def test_example_is_valid(where: str, doc: Any) -> None:
    m = manifest(doc, file=where)
    assert schema.check_schema(m) == []
    assert semantic.check_manifest(m) == []
