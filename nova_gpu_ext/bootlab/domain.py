"""Turn a Nova domain XML into one that starts in this sandbox.

Layer rule: pure transformation (XML text in, XML text and a list of what
changed out; no I/O, no libvirt, no CONF). What the host has is passed in
as a :class:`SandboxHost`.

Everything the driver decided about firmware, devices, memory backing, CPU
count, boot menu, USB, video, balloon and option ROMs is kept. Only what
cannot exist here is changed, and every change is returned as one line
(the boot lab prints them):

* the domain type becomes ``qemu`` (TCG) unless ``virt_type`` says ``kvm``
  (this sandbox's ``/dev/kvm`` is a software hypervisor that cannot boot a
  disk through SeaBIOS); the name becomes unique and the UUID is dropped,
  so a transient domain can start next to others;
* ``<cpu mode='host-model'|'host-passthrough'>`` loses its mode and model
  (TCG's default CPU; the topology and guest NUMA cells stay);
* the root disk's source becomes the boot lab's disk image (raw, no backing
  chain); other disks (ephemeral, swap, config drive) are removed;
* network interfaces become user-mode (slirp) interfaces with the same model,
  ROM and boot settings (the bridges and taps Nova plugs do not exist);
* PCI and mdev ``<hostdev>`` elements are removed (no IOMMU, no GPUs);
* graphics with a GL render node and ``accel3d`` on video are removed (no
  ``/dev/dri`` here);
* serial/console ``<log>`` files under Nova's instance directory are dropped
  (the boot lab reads the pty);
* ``<numatune>`` and CPU pinning that name host NUMA nodes or CPUs this
  host lacks are removed;
* ``<hugepages>`` is removed when the host has too few free pages of that
  size reserved (libvirt would refuse to start);
* ``<locked/>`` is removed (the sandbox refuses the memory-lock limit);
* in kernel boot mode, ``<kernel>``, ``<initrd>`` and ``<cmdline>`` are set.

Memory faulted in before the vCPUs run (``fault_in``): a GPU guest's memory
is pinned by VFIO when QEMU starts, which faults in and zeroes every page
on one thread, with 4 KiB pages. No device here pins memory, so when the
XML does not preallocate by itself the boot lab adds what reproduces that
cost: ``<memoryBacking><source type='memfd'/><allocation mode='immediate'
threads='1'/>`` (memfd is shmem, which gets no transparent huge pages with
Debian's default ``shmem_enabled=never``, so every 4 KiB page is faulted in
on one thread, as pinning does). An XML that preallocates (``<allocation
mode='immediate'>`` or ``<hugepages>``) is left as it is: that is the point
of the prealloc_threads and hugepages tweaks.
"""

import dataclasses
from typing import Optional
import uuid as uuid_mod

from lxml import etree

#: how the boot lab emulates VFIO's single-threaded 4 KiB pinning
PIN_MODEL_4K = '4k-1thread'
#: the same, but anonymous memory with THP (QEMU madvises its RAM)
PIN_MODEL_THP = 'thp-1thread'
PIN_MODELS = (PIN_MODEL_4K, PIN_MODEL_THP)


@dataclasses.dataclass(frozen=True)
class SandboxHost:
    """What this host has, as far as starting a domain is concerned."""

    cpus: int = 2
    numa_nodes: tuple = (0,)
    #: free huge pages by size in KiB, e.g. {2048: 0}
    free_hugepages: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Prepared:
    xml: str
    changes: list
    memory_kib: int
    preallocates: bool       # the XML preallocates by itself
    prealloc_threads: int    # 0 when not stated


def _text_int(el, default=0) -> int:
    try:
        return int(el.text)
    except (AttributeError, TypeError, ValueError):
        return default


def _kib(value: int, unit: Optional[str]) -> int:
    factor = {None: 1, 'KiB': 1, 'k': 1, 'K': 1, 'MiB': 1024,
              'M': 1024, 'GiB': 1024 ** 2, 'G': 1024 ** 2,
              'b': 1.0 / 1024, 'bytes': 1.0 / 1024}.get(unit, 1)
    return int(value * factor)


def _parse_cpuset(text: str) -> set:
    cpus = set()
    for part in (text or '').split(','):
        part = part.strip()
        if not part or part.startswith('^'):
            continue
        if '-' in part:
            lo, hi = part.split('-', 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return cpus


def _remove(el, changes: list, why: str) -> None:
    changes.append(why)
    el.getparent().remove(el)


def _set_memory(root, memory_kib: int, changes: list) -> None:
    old = None
    for tag in ('memory', 'currentMemory'):
        el = root.find(tag)
        if el is None:
            continue
        old = old or _kib(_text_int(el), el.get('unit'))
        el.text = str(memory_kib)
        el.set('unit', 'KiB')
    cells = root.findall('./cpu/numa/cell')
    for i, cell in enumerate(cells):
        share = memory_kib // len(cells)
        if i == len(cells) - 1:
            share = memory_kib - share * (len(cells) - 1)
        cell.set('memory', str(share))
        cell.set('unit', 'KiB')
    if old != memory_kib:
        changes.append('memory: %d MiB -> %d MiB' % (
            (old or 0) // 1024, memory_kib // 1024))


def prepare(xml: str, *, disk_image: Optional[str],
            kernel: Optional[str] = None,
            initrd: Optional[str] = None, cmdline: Optional[str] = None,
            name: Optional[str] = None, virt_type: str = 'qemu',
            host: SandboxHost = SandboxHost(),
            memory_mib: Optional[int] = None, fault_in: bool = True,
            pin_model: str = PIN_MODEL_4K) -> Prepared:
    """Return the domain XML for this sandbox and what was changed.

    ``kernel``/``initrd`` select direct kernel boot; otherwise the guest
    boots ``disk_image`` through the firmware.
    """
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    changes: list = []

    if root.get('type') != virt_type:
        changes.append('domain type %s -> %s' % (root.get('type'),
                                                 virt_type))
        root.set('type', virt_type)
    name_el = root.find('name')
    new_name = name or 'bootlab-%s' % uuid_mod.uuid4().hex[:12]
    if name_el is None:
        name_el = etree.Element('name')
        root.insert(0, name_el)
    name_el.text = new_name
    # A fresh UUID (libvirt falls back to the SMBIOS one when <uuid> is
    # missing, and two transient domains cannot share one).
    new_uuid = str(uuid_mod.uuid4())
    uuid_el = root.find('uuid')
    if uuid_el is None:
        uuid_el = etree.Element('uuid')
        root.insert(list(root).index(name_el) + 1, uuid_el)
    uuid_el.text = new_uuid
    for entry in root.iterfind("./sysinfo/system/entry[@name='uuid']"):
        entry.text = new_uuid
    for el in root.iterfind('./devices/emulator'):
        el.getparent().remove(el)

    if memory_mib:
        _set_memory(root, memory_mib * 1024, changes)

    cpu = root.find('cpu')
    if cpu is not None and cpu.get('mode') in ('host-model',
                                               'host-passthrough'):
        changes.append("cpu mode='%s' removed (TCG default CPU)" %
                       cpu.get('mode'))
        for attr in ('mode', 'match', 'check', 'migratable'):
            cpu.attrib.pop(attr, None)
        for el in cpu.findall('model') + cpu.findall('feature'):
            cpu.remove(el)

    devices = root.find('devices')
    if devices is None:
        devices = etree.SubElement(root, 'devices')
    _prepare_disks(devices, disk_image, changes)
    _prepare_devices(devices, changes)
    _prepare_placement(root, host, changes)

    os_el = root.find('os')
    if os_el is None:
        os_el = etree.SubElement(root, 'os')
    if kernel:
        for tag, value in (('kernel', kernel), ('initrd', initrd),
                           ('cmdline', cmdline)):
            if value is None:
                continue
            el = os_el.find(tag)
            if el is None:
                el = etree.SubElement(os_el, tag)
            el.text = value
        changes.append('direct kernel boot: %s' % kernel)

    memory_kib = _kib(_text_int(root.find('memory')),
                      root.find('memory').get('unit')
                      if root.find('memory') is not None else None)
    preallocates, threads = _prepare_memory(
        root, host, memory_kib, fault_in, pin_model, changes)
    return Prepared(
        xml=etree.tostring(root, encoding='unicode'),
        changes=changes, memory_kib=memory_kib,
        preallocates=preallocates, prealloc_threads=threads)


def _prepare_disks(devices, disk_image: Optional[str], changes: list):
    root_disk = None
    for disk in devices.findall('disk'):
        if root_disk is None and disk.get('device', 'disk') == 'disk':
            root_disk = disk
            continue
        target = disk.find('target')
        _remove(disk, changes, 'disk %s (%s) removed' % (
            target.get('dev') if target is not None else '?',
            disk.get('device', 'disk')))
    if root_disk is None or disk_image is None:
        if root_disk is not None:
            _remove(root_disk, changes, 'root disk removed (no image)')
        return
    root_disk.set('type', 'file')
    for el in root_disk.findall('source') + \
            root_disk.findall('backingStore') + \
            root_disk.findall('auth') + root_disk.findall('encryption'):
        root_disk.remove(el)
    source = etree.Element('source', file=disk_image)
    driver = root_disk.find('driver')
    if driver is None:
        driver = etree.SubElement(root_disk, 'driver', name='qemu')
    driver.set('type', 'raw')
    root_disk.insert(list(root_disk).index(driver) + 1, source)
    changes.append('root disk source -> %s (raw)' % disk_image)


def _prepare_devices(devices, changes: list) -> None:
    for hostdev in devices.findall('hostdev'):
        addr = hostdev.find('./source/address')
        what = hostdev.get('type')
        if addr is not None and addr.get('uuid'):
            what += ' ' + addr.get('uuid')
        elif addr is not None:
            what += ' %s:%s:%s.%s' % tuple(
                addr.get(k, '?') for k in ('domain', 'bus', 'slot',
                                           'function'))
        _remove(hostdev, changes, 'hostdev %s removed (no such device '
                                  'here)' % what)
    for iface in devices.findall('interface'):
        if iface.get('type') == 'user':
            continue
        old = iface.get('type')
        for child in list(iface):
            if child.tag not in ('mac', 'model', 'rom', 'boot', 'driver',
                                 'address', 'mtu'):
                iface.remove(child)
        driver = iface.find('driver')
        if driver is not None:
            for attr in list(driver.attrib):
                if attr not in ('name', 'queues'):
                    driver.attrib.pop(attr)
            if driver.get('name') == 'vhost':
                driver.attrib.pop('name')
        iface.set('type', 'user')
        model = iface.find('model')
        changes.append('interface type %s -> user (model %s kept)' % (
            old, model.get('type') if model is not None else 'default'))
    for graphics in devices.findall('graphics'):
        gl = graphics.find('gl')
        if gl is not None and gl.get('enable') != 'no':
            _remove(graphics, changes, 'graphics %s with GL removed (no '
                                       '/dev/dri here)' %
                    graphics.get('type'))
        elif graphics.get('type') in ('spice',) and \
                graphics.find('gl') is not None:
            _remove(graphics, changes, 'spice graphics removed')
    for accel in devices.iterfind('./video/model/acceleration'):
        if accel.get('accel3d') == 'yes':
            accel.getparent().remove(accel)
            changes.append('video accel3d removed (no GL here)')
    for tag in ('serial', 'console'):
        for dev in devices.findall(tag):
            for log in dev.findall('log'):
                dev.remove(log)
                changes.append('%s log file dropped (pty read '
                               'directly)' % tag)
            if dev.get('type') == 'file':
                dev.set('type', 'pty')
                for src in dev.findall('source'):
                    dev.remove(src)
                changes.append('%s type file -> pty' % tag)
    if not devices.findall('serial'):
        serial = etree.SubElement(devices, 'serial', type='pty')
        etree.SubElement(serial, 'target', port='0')
        changes.append('serial pty added')


def _prepare_placement(root, host: SandboxHost, changes: list) -> None:
    numatune = root.find('numatune')
    if numatune is not None:
        nodes = set()
        for el in numatune:
            nodes |= _parse_cpuset(el.get('nodeset', ''))
        if not nodes <= set(host.numa_nodes):
            _remove(numatune, changes, 'numatune removed (host NUMA '
                                       'node(s) %s do not exist here)' %
                    ','.join(str(n) for n in sorted(nodes)))
    cpus = set(range(host.cpus))
    if root.get('cpuset') and not _parse_cpuset(root.get('cpuset')) <= cpus:
        root.attrib.pop('cpuset')
        changes.append('vcpu cpuset removed (host CPUs missing here)')
    vcpu = root.find('vcpu')
    if vcpu is not None and vcpu.get('cpuset') and \
            not _parse_cpuset(vcpu.get('cpuset')) <= cpus:
        vcpu.attrib.pop('cpuset')
        changes.append('vcpu cpuset removed (host CPUs missing here)')
    cputune = root.find('cputune')
    if cputune is not None:
        for el in list(cputune):
            if el.get('cpuset') and not _parse_cpuset(
                    el.get('cpuset')) <= cpus:
                cputune.remove(el)
                changes.append('cputune %s removed (host CPUs missing '
                               'here)' % el.tag)
        if len(cputune) == 0:
            root.remove(cputune)


def _prepare_memory(root, host, memory_kib, fault_in, pin_model, changes):
    backing = root.find('memoryBacking')
    if backing is not None:
        locked = backing.find('locked')
        if locked is not None:
            _remove(locked, changes, 'memoryBacking/locked removed '
                                     '(refused in this sandbox)')
        hugepages = backing.find('hugepages')
        if hugepages is not None:
            need = {}
            pages = hugepages.findall('page') or [None]
            for page in pages:
                size = 2048 if page is None else _kib(
                    int(page.get('size', '2048')), page.get('unit'))
                need[size] = need.get(size, 0) + memory_kib // size
            short = [s for s, n in need.items()
                     if host.free_hugepages.get(s, 0) < n]
            if short:
                _remove(hugepages, changes, 'hugepages removed (%s KiB '
                                            'pages not reserved here)' %
                        ','.join(str(s) for s in short))
    preallocates = False
    threads = 0
    if backing is not None:
        allocation = backing.find('allocation')
        if allocation is not None and allocation.get('mode') == 'immediate':
            preallocates = True
            threads = int(allocation.get('threads', '0') or 0)
        if backing.find('hugepages') is not None:
            preallocates = True
        if len(backing) == 0:
            root.remove(backing)
    if fault_in and not preallocates:
        backing = root.find('memoryBacking')
        if backing is None:
            backing = etree.Element('memoryBacking')
            # after currentMemory/memory, where libvirt formats it
            anchor = root.find('currentMemory')
            if anchor is None:
                anchor = root.find('memory')
            root.insert(list(root).index(anchor) + 1, backing)
        if pin_model == PIN_MODEL_4K and backing.find('source') is None:
            etree.SubElement(backing, 'source', type='memfd')
        etree.SubElement(backing, 'allocation', mode='immediate',
                         threads='1')
        changes.append('memory faulted in on 1 thread before the vCPUs run '
                       '(stands in for VFIO pinning: %s)' % pin_model)
        threads = 1
    return preallocates, threads
