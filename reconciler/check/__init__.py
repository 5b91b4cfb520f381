"""Checking the tree: JSON Schema, semantic checks, the validation pipeline."""
