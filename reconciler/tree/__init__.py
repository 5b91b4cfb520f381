"""Reading the tree: find and parse YAML safely, read it from git, keep it in memory, cache per-file results."""
