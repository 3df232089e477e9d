"""The host GPUs behind a guest's devices (what upstream's config holds).

Layer rule: compute adapter, no decisions. Reads the PCI hostdevs and mdevs
upstream's driver put in a ``LibvirtConfigGuest`` and maps them to the
host's physical GPUs (a VF counts as its PF, an mdev as its parent); shared
by the affinity, sharing, PCI layout, migration and report code.
"""

from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import utils as libvirt_utils
from oslo_log import log as logging

from nova_gpu_ext import model

LOG = logging.getLogger(__name__)


def pci_address(dev):
    """``0000:3b:00.0`` of a ``LibvirtConfigGuestHostdevPCI``."""
    return str(model.PCIAddress.from_fields(dev.domain, dev.bus, dev.slot,
                                            dev.function))


def libvirt_name_to_address(name):
    """``pci_0000_81_00_0`` -> ``0000:81:00.0``."""
    return str(model.PCIAddress.from_libvirt_name(name))


def physical_gpu_addresses(driver, guest, topology):
    """The physical GPUs behind the guest's devices, in device order.

    A VF counts as its PF; an mdev as its parent. Devices that are not GPUs
    the topology knows (NICs, ...) are ignored.
    """
    out = []
    for dev in guest.devices:
        gpu = device_gpu(driver, dev, topology)
        if gpu is not None and str(gpu.address) not in out:
            out.append(str(gpu.address))
    return out


def device_gpu(driver, dev, topology):
    """The physical GPU behind one guest device, or None.

    A VF counts as its PF; an mdev as its parent; devices that are not GPUs
    the topology knows (NICs, ...) give None.
    """
    if isinstance(dev, vconfig.LibvirtConfigGuestHostdevPCI):
        address = pci_address(dev)
    elif isinstance(dev, vconfig.LibvirtConfigGuestHostdevMDEV):
        try:
            info = driver._get_mediated_device_information(
                libvirt_utils.mdev_uuid2name(dev.uuid))
            address = libvirt_name_to_address(info['parent'])
        except Exception:
            LOG.warning('Cannot tell the parent GPU of mdev %s', dev.uuid)
            return None
    else:
        return None
    return topology.physical_gpu(address)
