"""virtsync's node components: libvirt domain building, identity, disks, networks."""
