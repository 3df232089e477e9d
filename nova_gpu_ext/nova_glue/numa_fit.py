"""Nova's NUMA fit, steered to the GPU's node (scheduler and compute).

Layer rule: adapter shared by ``scheduler/`` and ``virt/``. It only calls
Nova's own NUMA machinery, with the host-node subsets the pure core
(:mod:`nova_gpu_ext.core.numa`) allows:

* :func:`one_cell_topology`: the ``InstanceNUMATopology`` Nova builds for
  the flavor plus ``hw:numa_nodes=1`` (``hardware.numa_get_constraints``),
  so a GPU guest our driver places is a NUMA guest in Nova's books (the
  resource tracker and the scheduler's ``HostState`` count its cell);
* :func:`fit`: ``hardware.numa_fit_instance_to_host`` on each allowed
  subset of the host's cells in turn, then (``preferred``) on all of them.

The scheduler and the compute claim both call :func:`fit` with the host's
``NUMATopology`` and ``NUMATopologyLimits`` built from the same allocation
ratios, so a host the filter passed does not fail the claim for a NUMA
reason. Every Nova internal used here is listed in
doc/source/reference/nova-internals.rst (Issue 10) and pinned by
tests/unit/test_numa_books.py.
"""

from nova import objects
from nova.virt import hardware


def one_cell_topology(flavor, image_meta):
    """Nova's topology for ``flavor`` with ``hw:numa_nodes=1``."""
    flavor = flavor.obj_clone()
    specs = dict(flavor.extra_specs or {})
    specs['hw:numa_nodes'] = '1'
    flavor.extra_specs = specs
    if image_meta is None:
        image_meta = objects.ImageMeta.from_dict({})
    return hardware.numa_get_constraints(flavor, image_meta)


def limits(cpu_ratio, ram_ratio):
    return objects.NUMATopologyLimits(cpu_allocation_ratio=cpu_ratio,
                                      ram_allocation_ratio=ram_ratio)


def fit(host_topology, requested, steering, limits=None, pci_requests=None,
        pci_stats=None, provider_mapping=None):
    """The fitted ``InstanceNUMATopology`` (cell ids = host nodes) or None.

    ``requested`` is not changed (Nova's fit writes into its argument).
    """
    if not host_topology or not requested:
        return None
    by_id = {cell.id: cell for cell in host_topology.cells}
    tries = []
    for subset in steering.subsets:
        cells = [by_id[i] for i in subset if i in by_id]
        if len(cells) == len(subset):
            tries.append(cells)
    if steering.anywhere:
        tries.append(list(host_topology.cells))
    for cells in tries:
        if len(cells) < len(requested.cells):
            continue
        fitted = hardware.numa_fit_instance_to_host(
            objects.NUMATopology(cells=cells), requested.obj_clone(),
            provider_mapping, limits=limits, pci_requests=pci_requests,
            pci_stats=pci_stats)
        if fitted:
            return fitted
    return None
