"""The large-BAR scenario's host: four H100s, as Nova and discovery see it.

Layer rule: simulation (test code: functional tests, e2e XML dumps). Starts
``gpu_layouts.HGX_H100_4`` on a functional test case: fake sysfs (BARs and
host limits) and fakelibvirt devices from the one description, the PCI
alias ``h100`` for whole GPUs, and a UEFI q35 image.
"""

from oslo_serialization import jsonutils
from oslo_utils import uuidutils

from nova_gpu_ext.sim import gpu_layouts

ALIAS = 'h100'
LAYOUT = gpu_layouts.HGX_H100_4
#: a VT-d capability register whose MGAW field is 38: 39-bit IOMMU
VTD_CAP_39_BITS = 'd2008c40660462'


def start_host(test, hostname, vtd_cap=None):
    """Start ``hostname`` running the layout on ``test``; return it."""
    layout_host = LAYOUT.host()
    root = test.build_sysfs(None)
    fs = layout_host.write_sysfs(root)
    if vtd_cap:
        fs.set_address_limits(vtd_cap=vtd_cap)
    test.flags(sysfs_root=root, group='gpu_ext')
    gpu = LAYOUT.gpus[0]
    spec = {'vendor_id': '%04x' % gpu.vendor, 'product_id': '%04x' %
            gpu.device}
    test.flags(device_spec=[jsonutils.dumps(spec)],
               alias=[jsonutils.dumps(dict(spec, name=ALIAS,
                                           device_type='type-PCI'))],
               group='pci')
    test.start_compute(hostname, host_info=LAYOUT.host_info(),
                       pci_info=layout_host.pci_info())
    test._run_periodics()
    test._run_periodics()
    return layout_host


def flavor(test, gpus, memory_mb=1024):
    extra = {'pci_passthrough:alias': '%s:%d' % (ALIAS, gpus)} \
        if gpus else {}
    return test._create_flavor(memory_mb=memory_mb, vcpu=1, disk=1,
                               ephemeral=0, extra_spec=extra)


def uefi_image(test):
    """A UEFI q35 image (hw_firmware_type=uefi) in the fake Glance."""
    image_id = uuidutils.generate_uuid()
    test.glance.create(None, {
        'id': image_id, 'name': 'uefi-q35', 'status': 'active',
        'container_format': 'bare', 'disk_format': 'raw', 'size': 1024,
        'min_ram': 0, 'min_disk': 0, 'is_public': True,
        'properties': {'hw_firmware_type': 'uefi',
                       'hw_machine_type': 'q35'}})
    return image_id
