"""Prometheus metrics of one watcher: its own registry, served on 127.0.0.1 by default.

    virtsync_reconcile_total{trigger, result}      cycles (trigger: startup, change, resync)
    virtsync_reconcile_duration_seconds{trigger}   cycle duration (histogram)
    virtsync_drift_found_total                     live objects found to differ from an
                                                   unchanged desired state (resync)
    virtsync_actions_total{result}                 per-object outcomes (created, configured...)
    virtsync_vms{status}                           VMs by printableStatus, as last observed
    virtsync_tree_valid                            1 when the last read tree validated
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

DEFAULT_ADDRESS = "127.0.0.1"
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class WatchMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconciles = Counter("virtsync_reconcile", "Reconcile cycles",
                                  ["trigger", "result"], registry=r)
        self.duration = Histogram("virtsync_reconcile_duration_seconds",
                                  "Duration of reconcile cycles", ["trigger"],
                                  buckets=_BUCKETS, registry=r)
        self.drift = Counter("virtsync_drift_found", "Live objects found drifted from an "
                             "unchanged desired state", registry=r)
        self.actions = Counter("virtsync_actions", "Per-object apply outcomes", ["result"],
                               registry=r)
        self.vms = Gauge("virtsync_vms", "VMs by printable status", ["status"], registry=r)
        self.tree_valid = Gauge("virtsync_tree_valid", "1 when the last read tree validated",
                                registry=r)
        self._statuses: set[str] = set()

    def cycle(self, trigger: str, result: str, seconds: float) -> None:
        self.reconciles.labels(trigger, result).inc()
        self.duration.labels(trigger).observe(seconds)

    def outcome(self, word: str) -> None:
        self.actions.labels(word).inc()

    def set_statuses(self, statuses: Iterable[str]) -> None:
        counts = Tally(statuses)
        for gone in self._statuses - set(counts):
            self.vms.labels(gone).set(0)
        for status, n in counts.items():
            self.vms.labels(status).set(n)
        self._statuses = set(counts)

    def serve(self, port: int, address: str = DEFAULT_ADDRESS) -> int:
        """Start the HTTP endpoint on a daemon thread; returns the bound port (port 0 picks
        a free one)."""
        server, _thread = start_http_server(port, address, registry=self.registry)
        return int(server.server_port)
