"""Our GPU traits on PCI-in-placement providers, after Nova's translator.

Layer rule: adapter (compute side). With ``[pci] report_in_placement``, the
resource tracker runs
``nova.compute.pci_placement_translator.update_provider_tree_for_pci`` *after*
the driver's ``update_provider_tree``, and the translator *replaces* the traits
of every PCI provider it manages (``provider_tree.update_traits(name,
traits)``: the device spec's traits and ``COMPUTE_MANAGED_PCI_DEVICE``). Traits
the driver set on those providers would be gone before the tree is sent to
placement. So the driver registers, per node, the traits it wants, and the
``pci_traits`` wrap of :mod:`nova_gpu_ext.nova_glue.wraps` (installed by the
driver's ``__init__``) calls :func:`reapply` after the translator, to add them
back on the providers the translator left, in the same resource update.
Removing stale ones needs nothing: the translator already replaced them.

Pinned by ``tests/unit/test_pci_traits.py`` and
``tests/unit/test_nova_wraps.py`` (the function and its signature) and the
functional test of a GPU at a hex-letter address.
"""

from nova_gpu_ext import model
from nova_gpu_ext.topology import host_facts
from nova_gpu_ext.topology import summary

_TRAITS = {}            # nodename -> {provider name: set of traits}


def register(nodename, traits_by_provider):
    """The traits our driver wants on ``nodename``'s providers, by name."""
    _TRAITS[nodename] = {name: set(traits)
                         for name, traits in traits_by_provider.items()}


def reapply(provider_tree, nodename):
    """Add the registered traits to the providers that exist."""
    for name, traits in _TRAITS.get(nodename, {}).items():
        if traits and provider_tree.exists(name):
            provider_tree.add_traits(name, *traits)


def update_gpu_providers(provider_tree, topology, nodename):
    """Set our traits on the GPU providers that exist; return the provider
    UUID of each GPU function (physical GPUs and mdev-parent VFs) by PCI
    address.

    Only traits this project owns (``summary.is_owned_trait``) are ever
    removed; the ones wanted on PCI-in-placement providers are registered
    for the ``pci_traits`` wrap as well.
    """
    uuids = {}
    for gpu in topology.gpus:
        if gpu.kind is model.GPUKind.VF and not gpu.mdev_types:
            continue
        for name in host_facts.provider_names(gpu, nodename):
            if provider_tree.exists(name):
                uuids[str(gpu.address)] = provider_tree.data(name).uuid
    wanted = host_facts.provider_traits(topology, nodename)
    for rp_name, traits in wanted.items():
        if provider_tree.exists(rp_name):
            stale = {t for t in provider_tree.data(rp_name).traits
                     if summary.is_owned_trait(t)}
            provider_tree.remove_traits(rp_name, *(stale - traits))
            provider_tree.add_traits(rp_name, *traits)
    register(nodename, wanted)
    return uuids
