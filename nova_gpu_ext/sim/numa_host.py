"""Small NUMA hosts for the NUMA-books tests, and a ledger read from XML.

Layer rule: simulation. One :class:`NumaHost` drives both views of a host
(Nova's fakelibvirt and the fake sysfs nova-gpu-ext reads), so they cannot
disagree: fakelibvirt numbers cells socket by socket and CPUs cell by cell
(``cores * threads`` per cell), splits memory evenly, and the sysfs tree is
written the same way (node ``n`` on socket ``n // nodes_per_socket``).

:func:`committed_mb` reads what a host's guests have committed per host
node from the domain XML the driver defined
(:mod:`nova_gpu_ext.topology.domain_usage`): strict ``<numatune><memory>``
bindings of guests without NUMA cells, and each guest NUMA cell's memory on
the host node its ``<memnode>`` names.
"""

import dataclasses

from nova.tests.fixtures import libvirt as fakelibvirt

from nova_gpu_ext.sim import samplehost
from nova_gpu_ext.topology import domain_usage


@dataclasses.dataclass(frozen=True)
class NumaHost:
    sockets: int = 2
    nodes_per_socket: int = 1
    cores: int = 2
    threads: int = 2
    memory_mb_per_node: int = 8192
    gpus: tuple = ()

    @property
    def nodes(self):
        return self.sockets * self.nodes_per_socket

    def socket_of(self, node):
        return node // self.nodes_per_socket

    @property
    def cpus_per_node(self):
        return self.cores * self.threads

    def host_info(self):
        return fakelibvirt.HostInfo(
            cpu_nodes=self.nodes_per_socket, cpu_sockets=self.sockets,
            cpu_cores=self.cores,
            cpu_threads=self.threads,
            kB_mem=self.nodes * self.memory_mb_per_node * 1024)

    def pci_info(self):
        return self.layout().stock_pci_info()

    def layout(self):
        """This host in the one description format."""
        return samplehost.layout(
            self.gpus, nodes=self.nodes,
            nodes_per_socket=self.nodes_per_socket,
            cpus_per_node=self.cpus_per_node,
            memory_mb_per_node=self.memory_mb_per_node)

    def write_sysfs(self, root):
        return self.layout().host().write_sysfs(root)

    def start(self, test, hostname):
        """Start a compute running our driver on this host."""
        root = test.build_sysfs(None)
        self.write_sysfs(root)
        test.flags(sysfs_root=root, group='gpu_ext')
        test.sysfs_root = root
        return test.start_compute(
            hostname, host_info=self.host_info(), pci_info=self.pci_info())


#: The host of issue 10: two nodes of 8 GiB, both vGPU GPUs on node 1.
ISSUE_10 = NumaHost(gpus=(
    samplehost.SampleGPU(bus=0x81, slot=0, numa_node=1, mdev=True),
    samplehost.SampleGPU(bus=0x82, slot=0, numa_node=1, mdev=True),
))


def guest_commitment(xml):
    """({host node: MiB}, kind) one domain commits; kind is 'cells',
    'strict' or None (a ``preferred`` binding commits nothing)."""
    use = domain_usage.guest_use(xml)
    if use.kind not in ('cells', 'strict'):
        return {}, None
    return {node: mib for node, (_cpus, mib) in use.nodes.items()}, use.kind


def committed_mb(xmls):
    """{host node: MiB committed} over the domain XMLs of a host."""
    out = {}
    for xml in xmls:
        for node, mib in guest_commitment(xml)[0].items():
            out[node] = out.get(node, 0) + mib
    return out
