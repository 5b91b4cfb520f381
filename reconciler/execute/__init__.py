"""Executing a plan: apply through a backend, with journal, inventory and lock."""
