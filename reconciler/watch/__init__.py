"""Watching: keep the nodes matching the tree continuously, with logs and metrics."""
