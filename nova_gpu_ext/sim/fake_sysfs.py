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

:data:`SAMPLE_HOSTS` names the hosts every test and the docs refer to.
"""

import os
import uuid as uuid_lib

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
    cpus = sorted(cpus)
    parts = []
    start = prev = None
    for cpu in cpus:
        if start is None:
            start = prev = cpu
        elif cpu == prev + 1:
            prev = cpu
        else:
            parts.append('%d-%d' % (start, prev) if prev != start
                         else str(start))
            start = prev = cpu
    if start is not None:
        parts.append('%d-%d' % (start, prev) if prev != start
                     else str(start))
    return ','.join(parts)


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
                link=('16.0 GT/s PCIe', 16), local_cpus=None):
        """A PCI function; returns its directory."""
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
                driver=driver, link=None,
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


def _two_sockets(fs, cpus_per_node=8, memory_mb=65536, hugepages=None):
    for node in (0, 1):
        fs.add_node(node, range(node * cpus_per_node,
                                (node + 1) * cpus_per_node),
                    memory_mb, socket=node, hugepages=hugepages)


def dgx_2socket_8gpu(root, dev_root=None):
    """2 sockets / 2 NUMA nodes, 8 NVIDIA A100 (4 per socket, 2 per PCIe
    switch), each with a card and a render node, an ASPEED BMC console."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=16, memory_mb=262144,
                 hugepages={2048: 1024, 1048576: 16})
    fs.add_pci('0000:02:00.0', 0x1a03, 0x2000, pci_class=CLASS_VGA,
               numa_node=0, driver='ast', iommu_group=1, link=None)
    group = 10
    for node, buses in ((0, (0x07, 0x0f, 0x47, 0x4e)),
                        (1, (0x87, 0x90, 0xb7, 0xbd))):
        for i, bus in enumerate(buses):
            if i % 2 == 0:
                root_port = '0000:%02x:01.0' % (bus - 4)
                switch_up = '0000:%02x:00.0' % (bus - 3)
                fs.add_bridge(root_port, numa_node=node)
                fs.add_bridge(switch_up, parent=root_port, numa_node=node)
            down = '0000:%02x:%02x.0' % (bus - 2, i % 2)
            fs.add_bridge(down, parent=switch_up, numa_node=node)
            fs.add_gpu('0000:%02x:00.0' % bus, NVIDIA, 0x20b0, node,
                       'nvidia', iommu_group=group, parent=down,
                       render=True, card=True)
            group += 1
    return fs


def amd_mxgpu_sriov(root, dev_root=None):
    """AMD MxGPU: 2 FirePro S7150 x2 PFs (one per node), 16 VFs each
    possible, 8 enabled on the first, 16 on the second."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=12, memory_mb=131072)
    fs.add_gpu('0000:03:00.0', AMD, 0x6929, 0, 'gim', iommu_group=20)
    fs.add_vfs('0000:03:00.0', 8, totalvfs=16, vf_device=0x692f,
               first_iommu_group=100)
    fs.add_gpu('0000:83:00.0', AMD, 0x6929, 1, 'gim', iommu_group=21)
    fs.add_vfs('0000:83:00.0', 16, totalvfs=16, vf_device=0x692f,
               first_iommu_group=200)
    return fs


NVIDIA_VGPU_TYPES = (
    # (type id, label, instances on an idle M60 GPU)
    ('nvidia-18', 'GRID M60-2Q', 4),
    ('nvidia-22', 'GRID M60-8Q', 1),
)


def nvidia_vgpu_mdev(root, dev_root=None):
    """NVIDIA vGPU: 4 Tesla M60 GPUs (2 per node) offering mdev types; two
    mdevs already exist on the first GPU."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    for i, (bus, node) in enumerate(((0x3d, 0), (0x3e, 0),
                                     (0x88, 1), (0x89, 1))):
        address = '0000:%02x:00.0' % bus
        fs.add_gpu(address, NVIDIA, 0x13f2, node, 'nvidia',
                   iommu_group=30 + i)
        used = 2 if i == 0 else 0
        fs.add_mdev_type(address, 'nvidia-18', 'GRID M60-2Q', 4 - used,
                         description='num_heads=4, frl_config=60, '
                                     'framebuffer=2048M')
        fs.add_mdev_type(address, 'nvidia-22', 'GRID M60-8Q',
                         0 if used else 1,
                         description='num_heads=4, frl_config=60, '
                                     'framebuffer=8192M')
        for n in range(used):
            fs.add_mdev(address, 'nvidia-18',
                        uuid='a%07d-0000-4000-8000-000000000000' % n)
    return fs


def intel_gvtg(root, dev_root=None):
    """Intel GVT-g: one integrated GPU (VGA class, i915) with GVT-g types,
    single socket and single node, card0 and renderD128."""
    fs = FakeSysfs(root, dev_root)
    fs.add_node(0, range(8), 32768, socket=0)
    address = '0000:00:02.0'
    fs.add_gpu(address, INTEL, 0x3e92, 0, 'i915', pci_class=CLASS_VGA,
               iommu_group=0, render=True, card=True)
    fs.add_mdev_type(address, 'i915-GVTg_V5_4', 'GVTg_V5_4', 2,
                     description='low_gm_size: 128MB, high_gm_size: 512MB')
    fs.add_mdev_type(address, 'i915-GVTg_V5_8', 'GVTg_V5_8', 4,
                     description='low_gm_size: 64MB, high_gm_size: 384MB')
    return fs


def nvidia_sriov_vgpu(root, dev_root=None):
    """SR-IOV vGPU (NVIDIA Ampere and later, the layout of Nova's
    virtual-GPU guide): two A10 PFs (0000:ca:00.0 on node 0, 0000:e1:00.0
    on node 1); ``sriov-manage -e`` enabled 4 VFs on each, and each VF
    offers one instance of ``nvidia-593`` (A10-4Q) under its own
    ``mdev_supported_types``. One mdev exists on the first VF of the first
    PF (its ``available_instances`` is 0)."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    for i, (pf, node) in enumerate((('0000:ca:00.0', 0),
                                    ('0000:e1:00.0', 1))):
        fs.add_gpu(pf, NVIDIA, 0x2236, node, 'nvidia', iommu_group=50 + i)
        vfs = fs.add_vfs(pf, 4, totalvfs=32, driver='nvidia',
                         first_iommu_group=150 + 10 * i)
        for j, vf in enumerate(vfs):
            used = i == 0 and j == 0
            fs.add_mdev_type(vf, 'nvidia-593', 'NVIDIA A10-4Q',
                             0 if used else 1,
                             description='num_heads=4, frl_config=60, '
                                         'framebuffer=4096M')
            if used:
                fs.add_mdev(vf, 'nvidia-593',
                            uuid='c0000000-0000-4000-8000-000000000000')
    return fs


def nvidia_mig_vgpu(root, dev_root=None):
    """MIG-backed vGPU: an A100 PF (0000:b1:00.0) in MIG mode whose 7 VFs
    each offer one ``A100-1-5C`` instance (one GPU instance of 1 slice
    each). Its tenants run in parallel: not time-sliced."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    fs.add_gpu('0000:b1:00.0', NVIDIA, 0x20b0, 1, 'nvidia', iommu_group=60)
    for vf in fs.add_vfs('0000:b1:00.0', 7, totalvfs=16, driver='nvidia',
                         first_iommu_group=160):
        fs.add_mdev_type(vf, 'nvidia-699', 'NVIDIA A100-1-5C', 1)
    return fs


def nvidia_vfio_variant(root, dev_root=None):
    """NVIDIA vGPU on the vendor's VFIO variant driver (no mdev): an L40S
    PF (0000:4a:00.0) with 4 VFs bound to ``nvidia_vgpu_vfio``; the vGPU
    type is set per VF in sysfs and Nova passes the VFs through as PCI
    devices (``[pci] device_spec`` with ``"managed": "no"``, Nova 31 and
    later). The VFs are the tenants of their PF, like SR-IOV VFs."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    fs.add_gpu('0000:4a:00.0', NVIDIA, 0x26b9, 0, 'nvidia', iommu_group=70)
    for vf in fs.add_vfs('0000:4a:00.0', 4, totalvfs=32,
                         driver='nvidia_vgpu_vfio', first_iommu_group=170):
        _write(os.path.join(fs.device_dir(vf), 'nvidia',
                            'current_vgpu_type'), '1155\n')
    return fs


def single_socket_numa_unknown(root, dev_root=None):
    """A single-socket host whose GPU reports ``numa_node`` = -1."""
    fs = FakeSysfs(root, dev_root)
    fs.add_node(0, range(16), 65536, socket=0)
    fs.add_gpu('0000:01:00.0', NVIDIA, 0x1eb8, -1, 'vfio-pci',
               iommu_group=1, render=False, audio=True)
    return fs


def two_node_numa_unknown(root, dev_root=None):
    """A 2-node host whose only GPU reports ``numa_node`` = -1."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs)
    fs.add_gpu('0000:41:00.0', NVIDIA, 0x1eb8, -1, 'vfio-pci',
               iommu_group=5)
    return fs


def no_gpu(root, dev_root=None):
    """A CPU-only host: NUMA nodes and a NIC, no display controller."""
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=4, memory_mb=16384)
    fs.add_pci('0000:18:00.0', INTEL, 0x1572, pci_class=0x020000,
               numa_node=0, driver='i40e', iommu_group=3)
    return fs


def broken(root, dev_root=None):
    """Everything that goes wrong in the field, on one 2-node host.

    * a GPU with an empty ``vendor``-less twin (skipped, warned),
    * a GPU whose ``numa_node`` says ``garbage``,
    * a dangling ``driver`` symlink and a dangling ``iommu_group``,
    * an mdev type whose ``available_instances`` is empty,
    * a render node for virtio/vgem with no PCI parent,
    * a GPU behind a non-ACS switch sharing its IOMMU group with a NIC,
    * a NUMA node whose ``meminfo`` is unreadable garbage.
    """
    fs = FakeSysfs(root, dev_root)
    _two_sockets(fs, cpus_per_node=4, memory_mb=16384)
    _write(fs.path('devices', 'system', 'node', 'node1', 'meminfo'),
           'no numbers here\n')
    good = fs.add_gpu('0000:05:00.0', NVIDIA, 0x1eb8, 0, 'vfio-pci',
                      iommu_group=7, render=True)
    fs.add_pci('0000:04:00.0', INTEL, 0x1572, pci_class=0x020000,
               numa_node=0, driver='i40e', iommu_group=7)
    del good
    odd = fs.add_gpu('0000:06:00.0', NVIDIA, 0x1eb8, 1, 'vfio-pci')
    _write(os.path.join(odd, 'numa_node'), 'garbage\n')
    dangling = fs.add_gpu('0000:07:00.0', AMD, 0x66a1, 1, None)
    os.symlink('../../../bus/pci/drivers/gone', os.path.join(dangling,
                                                             'driver'))
    os.symlink('../../../kernel/iommu_groups/999',
               os.path.join(dangling, 'iommu_group'))
    nameless = fs.add_pci('0000:08:00.0', NVIDIA, 0x13f2, numa_node=1)
    os.unlink(os.path.join(nameless, 'vendor'))
    mdev_parent = fs.add_gpu('0000:09:00.0', NVIDIA, 0x13f2, 1, 'nvidia')
    type_dir = fs.add_mdev_type('0000:09:00.0', 'nvidia-18', 'GRID M60-2Q',
                                4)
    _write(os.path.join(type_dir, 'available_instances'), '')
    del mdev_parent
    fs.add_drm('renderD130', platform='vgem', driver='vgem')
    return fs


def virgl_2node(root, dev_root=None):
    """The demo's sample host (see :mod:`nova_gpu_ext.sim.samplehost`)."""
    from nova_gpu_ext.sim import samplehost
    return samplehost.write_sysfs(root, dev_root=dev_root)


def generated(root, gpus=16, vfs_per_gpu=16, nodes=2, dev_root=None):
    """A large host for benchmarks: ``gpus`` PFs spread over ``nodes``
    nodes, each with ``vfs_per_gpu`` VFs, a render node and an mdev type."""
    fs = FakeSysfs(root, dev_root)
    per_node = max(1, 64 // nodes)
    for node in range(nodes):
        fs.add_node(node, range(node * per_node, (node + 1) * per_node),
                    131072, socket=node)
    for i in range(gpus):
        node = i * nodes // gpus
        address = '0000:%02x:00.0' % (0x10 + i * 4)
        fs.add_gpu(address, AMD, 0x6929, node, 'gim', iommu_group=i + 1,
                   render=True)
        if vfs_per_gpu:
            fs.add_vfs(address, vfs_per_gpu, vf_device=0x692f,
                       first_iommu_group=1000 + i * vfs_per_gpu)
    return fs


def build_from_description(root, nodes, gpus, dev_root=None):
    """A host from a plain description (used by the demo's sample host).

    ``nodes``: [{id, socket, cpus, memory_mb}]; ``gpus``: [{address, vendor
    (hex str), device (hex str), numa_node, driver, mdev_types {type:
    instances}, render_node (e.g. 'renderD128') or None}].
    """
    fs = FakeSysfs(root, dev_root)
    for node in nodes:
        fs.add_node(node['id'], node['cpus'], node['memory_mb'],
                    socket=node['socket'])
    for i, gpu in enumerate(gpus):
        fs.add_gpu(gpu['address'], int(gpu['vendor'], 16),
                   int(gpu['device'], 16), gpu['numa_node'], gpu['driver'],
                   iommu_group=40 + i)
        for type_name, count in (gpu.get('mdev_types') or {}).items():
            fs.add_mdev_type(gpu['address'], type_name, type_name, count)
        if gpu.get('render_node'):
            fs.add_drm(gpu['render_node'], gpu['address'])
    return fs


SAMPLE_HOSTS = {
    'dgx_2socket_8gpu': dgx_2socket_8gpu,
    'amd_mxgpu_sriov': amd_mxgpu_sriov,
    'nvidia_vgpu_mdev': nvidia_vgpu_mdev,
    'intel_gvtg': intel_gvtg,
    'nvidia_sriov_vgpu': nvidia_sriov_vgpu,
    'nvidia_mig_vgpu': nvidia_mig_vgpu,
    'nvidia_vfio_variant': nvidia_vfio_variant,
    'single_socket_numa_unknown': single_socket_numa_unknown,
    'two_node_numa_unknown': two_node_numa_unknown,
    'no_gpu': no_gpu,
    'broken': broken,
    'virgl_2node': virgl_2node,
}
