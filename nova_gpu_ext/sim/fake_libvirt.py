"""Nova's fakelibvirt view of a host description (:mod:`.gpu_layouts`).

Layer rule: simulation (test code). The fake sysfs writer
(:mod:`.fake_sysfs`) renders what the kernel shows; this module renders
what libvirt shows, from the same :class:`.gpu_layouts.Function` entries:
:func:`device_class` is a ``FakePCIDevice`` that renders every capability a
function has (a VF carrying mdev types included), which upstream's
``FakePCIDevice`` cannot.
"""

from nova_gpu_ext.sim import fake_sysfs


def module():
    """Nova's fake libvirt (``nova.tests.fixtures.libvirt``)."""
    # Lazy: the CLI's sample hosts (--sample) describe their hosts with this
    # module without Nova's test fixtures; only the fakelibvirt views need
    # them.
    from nova.tests.fixtures import libvirt as fakelibvirt
    return fakelibvirt


_DEVICE_CLASS = []


def device_class():
    """``LayoutPCIDevice``: a subclass of fakelibvirt's ``FakePCIDevice``
    (made on first use: Nova's test fixtures are imported only by tests)
    rendering every capability of a :class:`Function`."""
    if _DEVICE_CLASS:
        return _DEVICE_CLASS[0]

    class LayoutPCIDevice(module().FakePCIDevice):
        """A node device with every capability its function has."""

        addr_templ = ("<address domain='0x0000' bus='0x%02x' slot='0x%02x' "
                      "function='0x%x'/>")
        type_templ = ("<type id='%(id)s'><name>%(label)s</name>"
                      "<deviceAPI>vfio-pci</deviceAPI>"
                      "<availableInstances>%(available)d"
                      "</availableInstances></type>")

        def __init__(self, function, host):
            self.layout_function = function
            self.layout_host = host
            bus, slot, fn = function.bdf
            kind = ('VF' if function.physfn else
                    'PF' if function.vfs else
                    'MDEV_TYPES' if function.mdev_types else 'PCI')
            super().__init__(
                kind, bus, slot, fn, function.iommu_group,
                function.numa_node,
                vf_ratio=len(function.vfs) if kind in ('PF', 'VF') else None,
                parent=None, vend_id='%04x' % function.vendor,
                vend_name=VENDOR_NAMES.get(function.vendor, 'Vendor'),
                prod_id='%04x' % function.device,
                prod_name=function.product, driver_name=function.driver)

        def _addr(self, address):
            domain, bus, slotfn = address.split(':')
            slot, fn = slotfn.split('.')
            return self.addr_templ % (int(bus, 16), int(slot, 16),
                                      int(fn, 16))

        def generate_xml(self, skip_capability=False):
            f = self.layout_function
            caps = []
            if f.vfs:
                caps.append(
                    "<capability type='virt_functions' maxCount='%d'>%s"
                    "</capability>" % (f.totalvfs, ''.join(
                        self._addr(v) for v in f.vfs)))
            if f.physfn:
                caps.append("<capability type='phys_function'>%s"
                            "</capability>" % self._addr(f.physfn))
            if f.mdev_types:
                caps.append("<capability type='mdev_types'>%s</capability>"
                            % ''.join(self.type_templ % {
                                'id': t.name, 'label': t.label,
                                'available': self.layout_host.available(f, t)}
                                for t in f.mdev_types))
            self.is_capable_of_mdevs = bool(f.mdev_types)
            self.pci_device = self.pci_device_template % {
                'bus': self.bus, 'slot': self.slot,
                'function': self.function, 'vend_id': self.vend_id,
                'vend_name': self.vend_name, 'prod_id': self.prod_id,
                'prod_name': self.prod_name, 'driver': self.driver_name,
                'capability': '\n'.join(caps), 'vpd_capability': '',
                'iommu_group': self.iommu_group,
                'numa_node': self.numa_node,
                'parent': self.pci_default_parent,
            }

    _DEVICE_CLASS.append(LayoutPCIDevice)
    return LayoutPCIDevice


VENDOR_NAMES = {fake_sysfs.NVIDIA: 'NVIDIA Corporation',
                fake_sysfs.AMD: 'Advanced Micro Devices, Inc. [AMD/ATI]',
                fake_sysfs.INTEL: 'Intel Corporation'}
