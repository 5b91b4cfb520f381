"""Identity that survives recreation: per-node and cluster-scope stores, domain metadata records and the owner marker."""
