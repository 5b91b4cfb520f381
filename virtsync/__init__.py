"""virtsync: GitOps for virtual machines.

Installed from a wheel, the reconciler and the node components live under this one
namespace (`virtsync.reconciler`, `virtsync.node`, schemas in `virtsync/schemas/`), so
they cannot collide with other distributions' top-level `node` or `reconciler`. In the
source tree (and editable installs) they are the top-level `reconciler/` and `node/`
folders; tools/build_backend/virtsync_build.py moves them here when it builds the wheel.
"""
