"""nova-compute starting: what is in use is recovered from libvirt.

Layer rule: thin adapter (compute side). After a restart the driver's
in-memory books (which guest uses which render node) are rebuilt from the
domains libvirt has defined (``init_host``), then narrowed to the
instances Nova says are on this host (``process_instances_at_startup``,
Nova 34, before guests are resumed): a guest evacuated away or deleted
while the compute was down keeps no render node here, and the residents'
minimum GPU shares are read again from their flavors.
"""

from oslo_log import log as logging

from nova_gpu_ext.virt import gpu_affinity
from nova_gpu_ext.virt import sharing_claim

LOG = logging.getLogger(__name__)


def log_host(topology, sysfs_root):
    LOG.info('nova-gpu-ext: %d GPU function(s), %d NUMA node(s), %d '
             'render node(s) under %s', len(topology.gpus),
             len(topology.numa_nodes), len(topology.render_nodes),
             sysfs_root)


def recover_render_nodes(driver):
    """Who uses which render node, from the defined domains."""
    try:
        guests = driver._host.list_guests(only_running=False)
    except Exception:
        LOG.warning('Cannot list domains to recover render node usage')
        return
    for guest in guests:
        try:
            name = gpu_affinity.render_node_of(guest.get_xml_desc())
        except Exception:
            continue
        if name:
            driver._render_nodes.record(guest.uuid, name)


def keep_instances(driver, instances):
    """The instances Nova loaded for this host at startup: forget render
    nodes of guests no longer on it, and recover the residents' minimum
    GPU shares (:func:`sharing_claim.recover_at_startup`, never fatal)."""
    driver._render_nodes.retain({i.uuid for i in instances if not i.deleted})
    sharing_claim.recover_at_startup(driver, instances)
