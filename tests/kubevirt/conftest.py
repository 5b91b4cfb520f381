"""Fixtures of the kubevirt backend's tests (kmock on a thread: kmock_server.py)."""

from __future__ import annotations

from kmock_server import kmock_server

__all__ = ["kmock_server"]
