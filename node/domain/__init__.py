"""libvirt domain XML for a VM: typed inputs (`model`), small configurators, and the
pure builder that combines them. See `node.domain.builder` for the entry points."""
