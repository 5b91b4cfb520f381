"""Fixtures shared by the e2e tests: the test driver connection and a spec tree."""

from e2e.test_apply_testdriver import conn, tree  # noqa: F401
