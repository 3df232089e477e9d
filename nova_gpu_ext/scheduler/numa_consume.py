"""Nova's scheduler counts a GPU guest's cells when it picks a host.

Layer rule: adapter. After the scheduler claims a host for one instance it
calls ``HostState.consume_from_request``, whose locked body
(``_locked_consume_from_request``) re-fits ``spec_obj.numa_topology`` with
Nova's own, unsteered fit over all host cells and adds the result to the
host's per-cell usage: the next instance of a multi-create sees it. For our
GPU guests that is wrong twice: a guest without a topology of its own is not
counted at all (the claim gives it one cell), and a guest with one may be
counted on another node than the GPU's, where the claim puts it.

The ``numa_consume`` wrap of :mod:`nova_gpu_ext.nova_glue.wraps` (installed
by our filters' ``__init__``) wraps that one method and calls :func:`consume`
when ``GPUPlacementFilter`` recorded the fitted cells of the
claimed candidate (:func:`numa_candidates.fitted_for`), Nova's body runs
with the host topology narrowed to those cells (and the one-cell topology
for a guest that had none), so Nova's own fit, usage and PCI accounting
land on exactly the cells the compute claim takes; the other cells are put
back unchanged. Anything else runs Nova's body untouched.
"""

from nova import objects
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def consume(original, host_state, spec_obj, fitted, synthetic):
    """Nova's consume on the host cells ``fitted`` uses only."""
    full = host_state.numa_topology
    ids = {cell.id for cell in fitted.cells}
    host_state.numa_topology = objects.NUMATopology(
        cells=[c for c in full.cells if c.id in ids])
    own = spec_obj.numa_topology
    if synthetic is not None:
        spec_obj.numa_topology = synthetic.obj_clone()
    try:
        original(host_state, spec_obj)
        used = {c.id: c for c in host_state.numa_topology.cells}
        if spec_obj.numa_topology is None:
            LOG.warning('nova-gpu-ext: the cells the filter fitted on host '
                        '%s no longer fit; not counted', host_state.host)
    finally:
        if synthetic is not None:
            spec_obj.numa_topology = own
        host_state.numa_topology = full
    host_state.numa_topology = objects.NUMATopology(
        cells=[used.get(c.id, c) for c in full.cells])
    LOG.debug('nova-gpu-ext: host %s consumed the guest\'s cells on node(s) '
              '%s', host_state.host, ','.join(map(str, sorted(ids))))
