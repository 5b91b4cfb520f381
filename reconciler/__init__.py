"""virtsync's reconciler: load, validate, plan, apply and watch VM specs from git."""

__version__ = "0.1.0"
