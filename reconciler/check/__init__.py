"""Checking the tree: JSON Schema, semantic checks, the validation pipeline."""

from pathlib import Path

# Here, not in schema.py: the cache namespace digests the schemas on every run, and a
# warm run must not pay for importing the schema validator (issue 13).
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
