"""Fake sysfs trees: real files and symlinks in a directory, laid out as
the kernel lays them out, for tests, the demo, devstack and benchmarks.

Layer rule: simulation (writes only under the root it is given). The trees
follow the kernel's layout on purpose, so discovery is tested through the
same paths a real host has:

* ``devices/pci0000:XX/<bridge>/.../<addr>``: the device, behind root ports
  and PCIe switches; ``bus/pci/devices/<addr>`` is a relative symlink to it.
* ``<device>/driver`` -> ``bus/pci/drivers/<name>``, ``<device>/iommu_group``
  -> ``kernel/iommu_groups/<n>`` whose ``devices/`` links back.
* SR-IOV: ``<pf>/virtfn<i>`` -> ``../<vf>``, ``<vf>/physfn`` -> ``../<pf>``.
* mdev: ``<parent>/mdev_supported_types/<type>/{name,available_instances,
  device_api,description,devices/}``; ``bus/mdev/devices/<uuid>`` ->
  ``<parent>/<uuid>`` with ``mdev_type`` -> the type directory.
* DRM: ``<device>/drm/renderD<n>`` with ``device`` -> the PCI device;
  ``class/drm/renderD<n>`` links to it; ``<dev_root>/dri/renderD<n>`` is an
  empty file standing in for the device node.
* NUMA: ``devices/system/node/node<n>/{cpulist,meminfo,distance,
  hugepages/}``, ``devices/system/cpu/cpu<n>/topology/physical_package_id``.

The named hosts every test and the docs refer to are in
:mod:`nova_gpu_ext.sim.sample_hosts`.
"""

import os
import uuid as uuid_lib

from nova_gpu_ext.sim import fake_bars
from nova_gpu_ext.topology import sysfs_reader as sr

NVIDIA = 0x10de
AMD = 0x1002
INTEL = 0x8086

CLASS_VGA = 0x030000
CLASS_3D = 0x030200
CLASS_DISPLAY_OTHER = 0x038000
CLASS_AUDIO = 0x040300
CLASS_BRIDGE = 0x060400


#: AER counter files: first counter name per line, then the total's name
AER_COUNTERS = {
    'correctable': (('RxErr', 'BadTLP', 'BadDLLP', 'Rollover', 'Timeout',
                     'NonFatalErr', 'CorrIntErr', 'HeaderOF'),
                    'TOTAL_ERR_COR'),
    'nonfatal': (('Undefined', 'DLP', 'SDES', 'TLP', 'FCP', 'CmpltTO',
                  'CmpltAbrt', 'UnxCmplt', 'RxOF', 'MalfTLP', 'ECRC',
                  'UnsupReq', 'ACSViol'), 'TOTAL_ERR_NONFATAL'),
    'fatal': (('Undefined', 'DLP', 'SDES', 'TLP', 'FCP', 'CmpltTO',
               'CmpltAbrt', 'UnxCmplt', 'RxOF', 'MalfTLP', 'ECRC',
               'UnsupReq', 'ACSViol'), 'TOTAL_ERR_FATAL'),
}


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(content)


def _symlink(target, link):
    """A relative symlink ``link`` -> ``target`` (both absolute)."""
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(os.path.relpath(target, os.path.dirname(link)), link)


def _cpulist(cpus):
    return sr.format_cpulist(cpus)


class FakeSysfs:
    """Builds one fake host under ``root`` (sysfs) and ``dev_root``."""

    def __init__(self, root, dev_root=None):
        self.root = root
        self.dev_root = dev_root or os.path.join(root, '_dev')
        self._nodes = {}
        self._device_dirs = {}
        self._next_render = 128
        self._next_card = 0
        os.makedirs(os.path.join(root, 'bus', 'pci', 'devices'),
                    exist_ok=True)
        os.makedirs(os.path.join(root, 'devices', 'system', 'node'),
                    exist_ok=True)
        self.set_address_limits()

    def set_address_limits(self, cpu_bits=fake_bars.DEFAULT_CPU_BITS,
                           page_1g=True, vtd_cap=fake_bars.DEFAULT_VTD_CAP,
                           amd_features=None):
        """``<root>/_proc/cpuinfo`` and ``class/iommu`` as the kernel
        shows them (``cpu_bits`` None: no "address sizes" line)."""
        flags = 'fpu pse pae pge lm' + (' pdpe1gb' if page_1g else '')
        text = 'processor\t: 0\nflags\t\t: %s\n' % flags
        if cpu_bits:
            text += ('address sizes\t: %d bits physical, 48 bits virtual\n'
                     % cpu_bits)
        _write(os.path.join(self.root, '_proc', 'cpuinfo'), text)
        if vtd_cap:
            _write(self.path('class', 'iommu', 'dmar0', 'intel-iommu',
                             'cap'), vtd_cap + '\n')
        if amd_features:
            _write(self.path('class', 'iommu', 'ivhd0', 'amd-iommu',
                             'features'), amd_features + '\n')

    def set_bars(self, address, bars):
        """Write ``address``'s sysfs ``resource`` (see resource_text)."""
        _write(os.path.join(self._device_dirs[address], 'resource'),
               fake_bars.resource_text(bars))

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    # -- NUMA ---------------------------------------------------------------

    def add_node(self, node_id, cpus, memory_mb, socket, distances=None,
                 hugepages=None):
        """A NUMA node; ``hugepages`` is {page size KiB: free pages}."""
        node_dir = self.path('devices', 'system', 'node', 'node%d' % node_id)
        _write(os.path.join(node_dir, 'cpulist'), _cpulist(cpus) + '\n')
        _write(os.path.join(node_dir, 'meminfo'),
               'Node %d MemTotal:       %d kB\n'
               'Node %d MemFree:        %d kB\n' % (
                   node_id, memory_mb * 1024, node_id, memory_mb * 512))
        for size_kb, free in (hugepages or {}).items():
            pages = os.path.join(node_dir, 'hugepages',
                                 'hugepages-%dkB' % size_kb)
            _write(os.path.join(pages, 'nr_hugepages'), '%d\n' % free)
            _write(os.path.join(pages, 'free_hugepages'), '%d\n' % free)
        for cpu in cpus:
            _write(self.path('devices', 'system', 'cpu', 'cpu%d' % cpu,
                             'topology', 'physical_package_id'),
                   '%d\n' % socket)
        self._nodes[node_id] = (cpus, distances)
        self._write_node_lists()

    def _write_node_lists(self):
        ids = sorted(self._nodes)
        for node_id in ids:
            distances = self._nodes[node_id][1] or [
                10 if other == node_id else 21 for other in ids]
            _write(self.path('devices', 'system', 'node', 'node%d' % node_id,
                             'distance'),
                   ' '.join(str(d) for d in distances) + '\n')
        _write(self.path('devices', 'system', 'node', 'online'),
               _cpulist(ids) + '\n')
        cpus = set()
        for node_cpus, _d in self._nodes.values():
            cpus.update(node_cpus)
        _write(self.path('devices', 'system', 'cpu', 'online'),
               _cpulist(cpus) + '\n')

    def node_cpus(self, node_id):
        return self._nodes[node_id][0] if node_id in self._nodes else ()

    # -- PCI ----------------------------------------------------------------

    def add_bridge(self, address, parent=None, numa_node=-1):
        """A root port or switch port; devices can sit behind it."""
        return self.add_pci(address, 0x8086, 0x2030, pci_class=CLASS_BRIDGE,
                            numa_node=numa_node, parent=parent,
                            driver='pcieport', link=None)

    def add_pci(self, address, vendor, device, pci_class=CLASS_3D,
                numa_node=-1, driver=None, iommu_group=None, parent=None,
                link=('16.0 GT/s PCIe', 16), local_cpus=None,
                documented_bars=True):
        """A PCI function; returns its directory. A GPU of
        ``fake_bars.DOCUMENTED_BAR1`` gets its BARs unless ``documented_bars``
        is False (VFs: their BARs come from the PF's SR-IOV BARs)."""
        if parent is not None:
            base = self._device_dirs[parent]
        else:
            base = self.path('devices', 'pci%s:%s' % (
                address[:4], address[5:7]))
        dev_dir = os.path.join(base, address)
        self._device_dirs[address] = dev_dir
        _write(os.path.join(dev_dir, 'vendor'), '0x%04x\n' % vendor)
        _write(os.path.join(dev_dir, 'device'), '0x%04x\n' % device)
        _write(os.path.join(dev_dir, 'class'), '0x%06x\n' % pci_class)
        _write(os.path.join(dev_dir, 'numa_node'), '%d\n' % numa_node)
        if local_cpus is None:
            local_cpus = (self.node_cpus(numa_node) if numa_node >= 0
                          else sorted(c for n in self._nodes.values()
                                      for c in n[0]))
        _write(os.path.join(dev_dir, 'local_cpulist'),
               _cpulist(local_cpus) + '\n')
        if link:
            # As the kernel shows a healthy PCIe device: trained at its
            # maximum, AER counters at zero (degrade_link/add_aer_errors
            # change that).
            for prefix in ('current', 'max'):
                _write(os.path.join(dev_dir, '%s_link_speed' % prefix),
                       '%s\n' % link[0])
                _write(os.path.join(dev_dir, '%s_link_width' % prefix),
                       '%d\n' % link[1])
            for kind in AER_COUNTERS:
                self._write_aer(dev_dir, kind, 0)
        if driver:
            drv = self.path('bus', 'pci', 'drivers', driver)
            os.makedirs(drv, exist_ok=True)
            _symlink(drv, os.path.join(dev_dir, 'driver'))
        if iommu_group is not None:
            group = self.path('kernel', 'iommu_groups', str(iommu_group))
            os.makedirs(os.path.join(group, 'devices'), exist_ok=True)
            _symlink(group, os.path.join(dev_dir, 'iommu_group'))
            _symlink(dev_dir, os.path.join(group, 'devices', address))
        _symlink(dev_dir, self.path('bus', 'pci', 'devices', address))
        bars = fake_bars.bars_of(vendor, device) if documented_bars \
            else {}
        if bars:
            _write(os.path.join(dev_dir, 'resource'),
                   fake_bars.resource_text(bars))
        return dev_dir

    def device_dir(self, address):
        return self._device_dirs[address]

    # -- health (sysfs attributes of any PCIe device) -----------------------

    def _write_aer(self, dev_dir, kind, total):
        names, total_name = AER_COUNTERS[kind]
        lines = ['%s %d' % (name, total if i == 0 else 0)
                 for i, name in enumerate(names)]
        lines.append('%s %d' % (total_name, total))
        _write(os.path.join(dev_dir, 'aer_dev_%s' % kind),
               '\n'.join(lines) + '\n')

    def degrade_link(self, address, width=None, speed=None):
        """The link trained below its maximum (a bad riser or contact)."""
        dev_dir = self._device_dirs[address]
        if width is not None:
            _write(os.path.join(dev_dir, 'current_link_width'),
                   '%d\n' % width)
        if speed is not None:
            _write(os.path.join(dev_dir, 'current_link_speed'),
                   '%s\n' % speed)

    def add_aer_errors(self, address, kind, total):
        """AER totals since boot: kind is correctable, nonfatal or fatal."""
        self._write_aer(self._device_dirs[address], kind, total)

    def fail_device(self, address):
        """Config space reads all ones, as after a failed reset."""
        dev_dir = self._device_dirs[address]
        _write(os.path.join(dev_dir, 'vendor'), '0xffff\n')
        _write(os.path.join(dev_dir, 'device'), '0xffff\n')
        _write(os.path.join(dev_dir, 'class'), '0xffffff\n')

    def add_gpu(self, address, vendor, device, numa_node, driver,
                pci_class=CLASS_3D, iommu_group=None, parent=None,
                render=False, card=False, audio=False):
        """A GPU function with optional DRM nodes and HDMI audio peer."""
        dev_dir = self.add_pci(address, vendor, device, pci_class=pci_class,
                               numa_node=numa_node, driver=driver,
                               iommu_group=iommu_group, parent=parent)
        if audio:
            self.add_pci(address[:-1] + '1', vendor, 0x10f0,
                         pci_class=CLASS_AUDIO, numa_node=numa_node,
                         driver='snd_hda_intel', iommu_group=iommu_group,
                         parent=parent, link=None)
        if card:
            self.add_drm('card%d' % self._next_card, address)
            self._next_card += 1
        if render:
            self.add_drm('renderD%d' % self._next_render, address)
            self._next_render += 1
        return dev_dir

    def add_vfs(self, pf_address, count, totalvfs=None, driver='vfio-pci',
                first_iommu_group=None, vf_device=None, offset=1):
        """Enable ``count`` VFs on a PF; the first is ``offset`` functions
        after the PF (the PF's ``sriov_offset``: 1 on most devices, 4 on
        NVIDIA Ampere GPUs, whose first VF is ``<bus>:00.4``)."""
        pf_dir = self._device_dirs[pf_address]
        _write(os.path.join(pf_dir, 'sriov_totalvfs'),
               '%d\n' % (totalvfs if totalvfs is not None else count))
        _write(os.path.join(pf_dir, 'sriov_numvfs'), '%d\n' % count)
        _write(os.path.join(pf_dir, 'sriov_offset'), '%d\n' % offset)
        vendor = int(open(os.path.join(pf_dir, 'vendor')).read(), 16)
        device = vf_device or int(open(os.path.join(pf_dir, 'device')).read(),
                                  16)
        pci_class = int(open(os.path.join(pf_dir, 'class')).read(), 16)
        numa_node = int(open(os.path.join(pf_dir, 'numa_node')).read())
        domain, bus, slotfn = pf_address.split(':')
        slot = int(slotfn.split('.')[0], 16)
        addresses = []
        for i in range(count):
            # VFs follow the PF: function ``offset``.. then the next slots.
            n = slot * 8 + offset + i
            vf = '%s:%s:%02x.%d' % (domain, bus, n // 8, n % 8)
            parent = os.path.basename(os.path.dirname(pf_dir))
            vf_dir = self.add_pci(
                vf, vendor, device, pci_class=pci_class, numa_node=numa_node,
                driver=driver, link=None, documented_bars=False,
                iommu_group=(first_iommu_group + i
                             if first_iommu_group is not None else None),
                parent=parent if parent in self._device_dirs else None)
            _symlink(vf_dir, os.path.join(pf_dir, 'virtfn%d' % i))
            _symlink(pf_dir, os.path.join(vf_dir, 'physfn'))
            addresses.append(vf)
        return addresses

    # -- mediated devices ---------------------------------------------------

    def add_mdev_type(self, parent, name, label, available,
                      device_api='vfio-pci', description=''):
        type_dir = os.path.join(self._device_dirs[parent],
                                'mdev_supported_types', name)
        _write(os.path.join(type_dir, 'name'), label + '\n')
        _write(os.path.join(type_dir, 'available_instances'),
               '%d\n' % available)
        _write(os.path.join(type_dir, 'device_api'), device_api + '\n')
        _write(os.path.join(type_dir, 'description'), description + '\n')
        os.makedirs(os.path.join(type_dir, 'devices'), exist_ok=True)
        return type_dir

    def set_available(self, parent, type_name, available):
        """A type's ``available_instances``, as the kernel updates it."""
        _write(os.path.join(self._device_dirs[parent], 'mdev_supported_types',
                            type_name, 'available_instances'),
               '%d\n' % available)

    def add_mdev(self, parent, type_name, uuid=None):
        uuid = uuid or str(uuid_lib.uuid4())
        parent_dir = self._device_dirs[parent]
        mdev_dir = os.path.join(parent_dir, uuid)
        type_dir = os.path.join(parent_dir, 'mdev_supported_types', type_name)
        os.makedirs(mdev_dir, exist_ok=True)
        _symlink(type_dir, os.path.join(mdev_dir, 'mdev_type'))
        _symlink(mdev_dir, os.path.join(type_dir, 'devices', uuid))
        _symlink(mdev_dir, self.path('bus', 'mdev', 'devices', uuid))
        return uuid

    # -- DRM ----------------------------------------------------------------

    def add_drm(self, name, pci_address=None, platform=None, driver=None):
        """A DRM node under a PCI device, or a platform device (vgem)."""
        if pci_address is not None:
            device = self._device_dirs[pci_address]
        else:
            device = self.path('devices', 'platform', platform or 'vgem')
            os.makedirs(device, exist_ok=True)
            if driver:
                drv = self.path('bus', 'platform', 'drivers', driver)
                os.makedirs(drv, exist_ok=True)
                _symlink(drv, os.path.join(device, 'driver'))
        node_dir = os.path.join(device, 'drm', name)
        os.makedirs(node_dir, exist_ok=True)
        _write(os.path.join(node_dir, 'dev'), '226:%s\n' % name[-3:])
        _symlink(device, os.path.join(node_dir, 'device'))
        _symlink(node_dir, self.path('class', 'drm', name))
        _write(os.path.join(self.dev_root, 'dri', name), '')
        return os.path.join(self.dev_root, 'dri', name)


# -- sample hosts -------------------------------------------------------------
