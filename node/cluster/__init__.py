"""The Cluster config, networks and one libvirt node's connection."""
