"""A stateful MODEL of the Kubernetes API server with KubeVirt resources, for tests (see
README.md). Not a cluster."""
