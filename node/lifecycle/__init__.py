"""A VM's power lifecycle on a node: run-strategy decisions, the agent, graceful stop, pending VMs, status."""
