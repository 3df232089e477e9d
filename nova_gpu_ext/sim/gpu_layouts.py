"""GPU layouts of real hosts, described once for fake libvirt and fake sysfs.

Layer rule: simulation (test code). A :class:`Layout` describes one host's
GPUs as the vendors' and Nova's documents show them (PCI addresses with hex
letters, VFs after the PF's ``sriov_offset``, mdev types on the function
that carries them) and renders both views from that one description:

* Nova's fakelibvirt (``nova.tests.fixtures.libvirt``): node devices whose
  ``<capability type='pci'>`` holds ``virt_functions`` (a PF),
  ``phys_function`` (a VF) and ``mdev_types`` (an mdev parent, which for SR-IOV
  vGPU is a VF). Upstream's ``FakePCIDevice`` renders a device as exactly one
  of PCI, PF, VF or MDEV_TYPES, so it cannot describe a VF carrying mdev types;
  :func:`nova_gpu_ext.sim.fake_libvirt.device_class` subclasses it and renders
  every capability the function has.
* the fake sysfs tree (:mod:`nova_gpu_ext.sim.fake_sysfs`): the same
  functions, ``physfn``/``virtfn<i>`` links, ``mdev_supported_types`` under
  the same function, ``available_instances`` as the kernel reports it.

:meth:`LayoutHost.mdev_created` keeps the two in step when Nova creates an
mdev (Nova's vGPU test base fakes ``_create_mdev``): the parent's
``availableInstances`` drops in libvirt's XML and in sysfs, and the mdev
appears under its parent in sysfs. A VF holds one vGPU at most (NVIDIA's
SR-IOV vGPU): once it has one, every type it offers shows 0.
"""

import dataclasses

from nova_gpu_ext import model
from nova_gpu_ext.sim import fake_libvirt
from nova_gpu_ext.sim import fake_sysfs


NVIDIA = fake_sysfs.NVIDIA
AMD = fake_sysfs.AMD
INTEL = fake_sysfs.INTEL


@dataclasses.dataclass(frozen=True)
class MdevType:
    """One ``mdev_supported_types/<name>`` entry of a parent function."""
    name: str
    label: str
    instances: int
    description: str = ''


@dataclasses.dataclass(frozen=True)
class GPU:
    """A physical GPU (the PF) and the VFs enabled on it."""
    address: str
    vendor: int
    device: int
    product: str
    numa_node: int
    driver: str
    iommu_group: int
    pci_class: int = fake_sysfs.CLASS_3D
    #: mdev types on the PF itself (time-sliced vGPU, GVT-g)
    mdev_types: tuple = ()
    vfs: int = 0
    totalvfs: int = 0
    #: the PF's ``sriov_offset``: NVIDIA Ampere's first VF is ``.4``
    vf_offset: int = 1
    vf_device: int = 0
    vf_driver: str = 'vfio-pci'
    #: mdev types on every VF (SR-IOV vGPU, MIG-backed vGPU)
    vf_mdev_types: tuple = ()
    #: (path under the VF, content): e.g. the variant driver's
    #: ``nvidia/current_vgpu_type``
    vf_files: tuple = ()
    #: the DRM render node the host driver gives the PF (``renderD128``)
    render_node: str = ''

    def vf_addresses(self):
        domain, bus, slotfn = self.address.split(':')
        slot = int(slotfn.split('.')[0], 16)
        out = []
        for i in range(self.vfs):
            n = slot * 8 + self.vf_offset + i
            out.append('%s:%s:%02x.%d' % (domain, bus, n // 8, n % 8))
        return out


@dataclasses.dataclass(frozen=True)
class Function:
    """One PCI function of a layout, as both views show it."""
    address: str
    vendor: int
    device: int
    product: str
    numa_node: int
    driver: str
    iommu_group: int
    mdev_types: tuple = ()
    physfn: str = ''
    vfs: tuple = ()
    totalvfs: int = 0

    @property
    def libvirt_name(self):
        return model.PCIAddress.parse(self.address).libvirt_name

    @property
    def bdf(self):
        domain, bus, slotfn = self.address.split(':')
        slot, function = slotfn.split('.')
        return int(bus, 16), int(slot, 16), int(function, 16)


@dataclasses.dataclass(frozen=True)
class Layout:
    name: str
    description: str
    gpus: tuple
    nodes: int = 2
    cpus_per_node: int = 6
    memory_mb_per_node: int = 16384
    nodes_per_socket: int = 1

    def socket_of(self, node):
        return node // self.nodes_per_socket

    def functions(self):
        out = []
        for gpu in self.gpus:
            vfs = tuple(gpu.vf_addresses())
            out.append(Function(
                gpu.address, gpu.vendor, gpu.device, gpu.product,
                gpu.numa_node, gpu.driver, gpu.iommu_group,
                mdev_types=gpu.mdev_types, vfs=vfs,
                totalvfs=gpu.totalvfs or len(vfs)))
            for i, vf in enumerate(vfs):
                out.append(Function(
                    vf, gpu.vendor, gpu.vf_device or gpu.device, gpu.product,
                    gpu.numa_node, gpu.vf_driver, _vf_group(gpu, i),
                    mdev_types=gpu.vf_mdev_types, physfn=gpu.address))
        return out

    def host_info(self):
        return fake_libvirt.module().HostInfo(
            cpu_nodes=self.nodes, cpu_sockets=1,
            cpu_cores=self.cpus_per_node // 2, cpu_threads=2,
            kB_mem=self.nodes * self.memory_mb_per_node * 1024)

    def host(self):
        return LayoutHost(self)

    def stock_pci_info(self):
        """fakelibvirt's view with Nova's own stock devices, as Nova's vGPU
        tests build it: a layout of whole functions (no VFs) whose mdev
        parents offer only the fake driver's ``nvidia-11`` type. The sample
        and NUMA hosts render this way (their mdevs are Nova's fakes);
        :meth:`LayoutHost.pci_info` renders any layout."""
        info = fake_libvirt.module().HostPCIDevicesInfo(
            num_pci=0, num_pfs=0, num_vfs=0)
        for gpu in self.gpus:
            assert not gpu.vfs and all(
                t.name == fake_libvirt.module().NVIDIA_11_VGPU_TYPE
                for t in gpu.mdev_types), gpu
            bus, slot, function = Function(
                gpu.address, gpu.vendor, gpu.device, gpu.product,
                gpu.numa_node, gpu.driver, gpu.iommu_group).bdf
            info.add_device(
                dev_type='MDEV_TYPES' if gpu.mdev_types else 'PCI',
                bus=bus, slot=slot, function=function,
                iommu_group=gpu.iommu_group, numa_node=gpu.numa_node,
                vend_id='%04x' % gpu.vendor,
                vend_name=fake_libvirt.VENDOR_NAMES.get(gpu.vendor, 'Vendor'),
                prod_id='%04x' % gpu.device, prod_name=gpu.product,
                driver_name=gpu.driver)
        return info


class LayoutHost:
    """One running host of a layout: its fakelibvirt devices and its fake
    sysfs tree, kept in step."""

    def __init__(self, layout):
        self.layout = layout
        self.functions = {f.address: f for f in layout.functions()}
        self.sysfs = None
        self._pci_info = None
        #: {parent address: {type name: mdevs created}}
        self.created = {}

    def pci_info(self):
        """fakelibvirt's ``HostPCIDevicesInfo`` with this layout's devices
        (built once: the connection keeps the same object over restarts)."""
        if self._pci_info is None:
            info = fake_libvirt.module().HostPCIDevicesInfo(
                num_pci=0, num_pfs=0, num_vfs=0)
            for fn in self.functions.values():
                device = fake_libvirt.device_class()
                info.devices[fn.libvirt_name] = device(fn, self)
            self._pci_info = info
        return self._pci_info

    def write_sysfs(self, root, dev_root=None):
        """The same host as a fake sysfs tree under ``root``."""
        layout = self.layout
        fs = fake_sysfs.FakeSysfs(root, dev_root)
        per = layout.cpus_per_node
        for node in range(layout.nodes):
            fs.add_node(node, range(node * per, (node + 1) * per),
                        layout.memory_mb_per_node,
                        socket=layout.socket_of(node))
        for gpu in layout.gpus:
            fs.add_gpu(gpu.address, gpu.vendor, gpu.device, gpu.numa_node,
                       gpu.driver, pci_class=gpu.pci_class,
                       iommu_group=gpu.iommu_group)
            _add_types(fs, gpu.address, gpu.mdev_types)
            if gpu.render_node:
                fs.add_drm(gpu.render_node, gpu.address)
            if not gpu.vfs:
                continue
            vfs = fs.add_vfs(gpu.address, gpu.vfs,
                             totalvfs=gpu.totalvfs or gpu.vfs,
                             driver=gpu.vf_driver,
                             first_iommu_group=_vf_group(gpu, 0),
                             vf_device=gpu.vf_device or None,
                             offset=gpu.vf_offset)
            assert vfs == gpu.vf_addresses(), (vfs, gpu.vf_addresses())
            for vf in vfs:
                _add_types(fs, vf, gpu.vf_mdev_types)
                for path, content in gpu.vf_files:
                    fake_sysfs._write(
                        '%s/%s' % (fs.device_dir(vf), path), content)
        self.sysfs = fs
        return fs

    def available(self, function, mtype):
        """``available_instances`` of a type on a parent, as the kernel
        (and libvirt's ``availableInstances``) report it."""
        created = self.created.get(function.address, {})
        if function.physfn and created:
            return 0        # one vGPU per VF
        return max(0, mtype.instances - created.get(mtype.name, 0))

    def mdev_created(self, parent_name, type_name, uuid):
        """Nova created an mdev on ``parent_name`` (a libvirt name, or a
        PCI address): the parent's instances drop in both views."""
        fn = next(f for f in self.functions.values()
                  if parent_name in (f.libvirt_name, f.address))
        mine = self.created.setdefault(fn.address, {})
        mine[type_name] = mine.get(type_name, 0) + 1
        if self._pci_info is not None:
            self._pci_info.devices[fn.libvirt_name].generate_xml()
        if self.sysfs is not None:
            self.sysfs.add_mdev(fn.address, type_name, uuid=uuid)
            for mtype in fn.mdev_types:
                self.sysfs.set_available(fn.address, mtype.name,
                                         self.available(fn, mtype))


def _vf_group(gpu, index):
    """Each VF in its own IOMMU group (ACS), distinct across PFs."""
    return 1000 + gpu.iommu_group * 64 + index


def _add_types(fs, address, types):
    for mtype in types:
        fs.add_mdev_type(address, mtype.name, mtype.label, mtype.instances,
                         description=mtype.description)


# -- the layouts --------------------------------------------------------------

#: NVIDIA's time-sliced vGPU types of an A40 (``nvidia-5xx`` ids; the id
#: varies with the driver release, the label form ``NVIDIA A40-<n>Q`` not)
A40_12Q = MdevType('nvidia-566', 'NVIDIA A40-12Q', 1,
                   'num_heads=4, frl_config=60, framebuffer=12288M')
#: a MIG-backed type of an A100: one GPU instance of 1 compute slice/5 GB
A100_1_5C = MdevType('nvidia-699', 'NVIDIA A100-1-5C', 1,
                     'num_heads=0, frl_config=60, framebuffer=4864M')

SRIOV_VGPU = Layout(
    'sriov-vgpu',
    "SR-IOV vGPU (NVIDIA Ampere and later, Nova's virtual-GPU guide): two "
    "A40 PFs (0000:3b:00.0 on node 0, 0000:af:00.0 on node 1), "
    "'sriov-manage -e' enabled 8 VFs on each (.00.4 to .01.3), each VF "
    "offers one instance of nvidia-566 (A40-12Q)",
    gpus=tuple(
        GPU(pf, NVIDIA, 0x2235, 'GA102GL [A40]', node, 'nvidia', 50 + node,
            vfs=8, totalvfs=32, vf_offset=4, vf_driver='nvidia',
            vf_mdev_types=(A40_12Q,))
        for node, pf in enumerate(('0000:3b:00.0', '0000:af:00.0'))))

MIG_VGPU = Layout(
    'mig-vgpu',
    'MIG-backed vGPU: two A100 PCIe PFs in MIG mode (0000:3b:00.0 on node 0, '
    '0000:af:00.0 on node 1) with 7 VFs each, every VF offering one '
    'A100-1-5C (nvidia-699): one GPU instance each, run in parallel',
    gpus=tuple(
        GPU(pf, NVIDIA, 0x20f1, 'GA100 [A100 PCIe 40GB]', node, 'nvidia',
            60 + node, vfs=7, totalvfs=16, vf_offset=4, vf_driver='nvidia',
            vf_mdev_types=(A100_1_5C,))
        for node, pf in enumerate(('0000:3b:00.0', '0000:af:00.0'))))

GVT_G = Layout(
    'gvt-g',
    'Intel GVT-g: the integrated GPU at 0000:00:02.0 (UHD 630, i915) '
    'offering i915-GVTg_V5_4 (2) and i915-GVTg_V5_8 (4) on the PF',
    gpus=(GPU('0000:00:02.0', INTEL, 0x3e92, 'UHD Graphics 630', 0, 'i915',
              0, pci_class=fake_sysfs.CLASS_VGA, mdev_types=(
                  MdevType('i915-GVTg_V5_4', 'GVTg_V5_4', 2,
                           'low_gm_size: 128MB, high_gm_size: 512MB'),
                  MdevType('i915-GVTg_V5_8', 'GVTg_V5_8', 4,
                           'low_gm_size: 64MB, high_gm_size: 384MB'))),),
    nodes=1)

VFIO_VARIANT = Layout(
    'vfio-variant',
    "NVIDIA vGPU on the vendor's VFIO variant driver: two L40S PFs "
    '(0000:3b:00.0, 0000:af:00.0) with 4 VFs each bound to '
    'nvidia_vgpu_vfio, a vGPU type chosen per VF in sysfs; Nova passes '
    "the VFs through as PCI devices ('managed': 'no', Nova 31+)",
    gpus=tuple(
        GPU(pf, NVIDIA, 0x26b9, 'AD102GL [L40S]', node, 'nvidia', 70 + node,
            vfs=4, totalvfs=32, vf_offset=4, vf_driver='nvidia_vgpu_vfio',
            vf_files=(('nvidia/current_vgpu_type', '1155\n'),))
        for node, pf in enumerate(('0000:3b:00.0', '0000:af:00.0'))))

AMD_MXGPU = Layout(
    'amd-mxgpu',
    'AMD MxGPU: two FirePro S7150 x2 PFs (0000:3b:00.0, 0000:af:00.0) on '
    'the gim driver with 4 VFs each (vfio-pci), passed through as PCI',
    gpus=tuple(
        GPU(pf, AMD, 0x6929, 'FirePro S7150 x2', node, 'gim', 80 + node,
            vfs=4, totalvfs=16, vf_device=0x692f)
        for node, pf in enumerate(('0000:3b:00.0', '0000:af:00.0'))))

HGX_H100_4 = Layout(
    'hgx-h100-4',
    'Four H100 SXM5 GPUs (10de:2330) passed through whole (vfio-pci), two '
    'per NUMA node behind their own root ports (0000:1b:00.0, '
    '0000:2a:00.0 on node 0; 0000:9c:00.0, 0000:bd:00.0 on node 1); each '
    'has BAR1 128 GiB and BAR3 32 MiB, 64-bit prefetchable (fake sysfs '
    'resource, DOCUMENTED_BAR1)',
    gpus=tuple(
        GPU(addr, NVIDIA, 0x2330, 'GH100 [H100 SXM5 80GB]', i // 2,
            'vfio-pci', 90 + i)
        for i, addr in enumerate(('0000:1b:00.0', '0000:2a:00.0',
                                  '0000:9c:00.0', '0000:bd:00.0'))),
    memory_mb_per_node=65536)

LAYOUTS = {layout.name: layout for layout in (
    SRIOV_VGPU, MIG_VGPU, GVT_G, VFIO_VARIANT, AMD_MXGPU, HGX_H100_4)}
