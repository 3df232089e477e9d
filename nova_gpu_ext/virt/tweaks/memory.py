"""Memory tweaks: parallel preallocation and huge pages for GPU guests.

Layer rule: adapter (domain tweak plugins). Each class changes only
``guest.membacking``; host facts come from ``ctx.host`` (the topology model)
and options from ``ctx.settings``.

Why: on a GPU host VFIO pins every page of guest RAM when QEMU starts, and
pinning faults in and zeroes each page on one thread. That is most of a
large GPU guest's creation time (10.1 s for 32 GiB with 4 KiB pages on a
16-core host). If QEMU preallocates the memory first, on several threads,
VFIO then pins pages that already exist: 0.83 s with huge pages and 16
threads. On this project's 2-core test machine, through libvirt, 8 GiB took
+~980 ms on one thread and +~635 ms on two.

``prealloc_threads`` (default on for GPU guests)
    ``<allocation mode='immediate' threads='N'/>`` (libvirt >= 8.2.0, QEMU
    ``prealloc-threads``, QEMU >= 5.0). N is the number of host CPUs the
    preallocation can run on, capped by ``[gpu_ext] prealloc_max_threads``:

    1. the CPUs of the host NUMA node(s) the guest's memory is bound to
       (``<numatune>``, Nova's NUMA guests); libvirt >= 9.0 with QEMU >= 7.2
       runs the threads on exactly those CPUs (a ``thread-context`` object);
    2. else the host CPUs the guest may run on (``<vcpu cpuset>``, e.g.
       ``[compute] cpu_shared_set``);
    3. else all host CPUs (the topology, or ``os.cpu_count()``).

    Only guests with a device that pins their memory get it by default
    (PCI/VF hostdev, mdev, hostdev/vDPA interface): a render-node-only
    (virgl) guest has no pinning to hide, so there preallocation would
    only add boot time (+~980 ms for 8 GiB on one thread here) and give up
    memory overcommit; such a flavor may still ask for it with
    ``gpu:tweak:prealloc_threads=true``.
    With fewer than two threads the tweak changes nothing: one thread is
    what pinning costs anyway. Preallocation gives up memory overcommit
    for the guest: for PCI/VF passthrough guests VFIO pins all memory
    anyway, so nothing is lost; an mdev (vGPU) guest whose vendor driver
    pins on demand loses overcommit, which Nova's default
    ``ram_allocation_ratio`` of 1.0 does not use.

``hugepages`` (default OFF; per flavor ``gpu:tweak:hugepages=true``)
    ``<hugepages><page size='...'/></hugepages>`` of the first size in
    ``[gpu_ext] hugepage_sizes_kb`` that divides the memory of each guest
    NUMA cell and of which the host node(s) behind the cell have enough
    free pages. Why not on by default: Nova accounts huge pages only for
    guests that ask for them with ``hw:mem_page_size``; Nova's NUMA claim
    of any other guest (with or without a NUMA topology) counts small pages.
    Pages this tweak hands out are invisible to the scheduler and to the
    resource tracker, so two guests can be given the same free pages and the
    second fails in QEMU after scheduling passed. The free counts it checks
    are the topology's last reading, not a claim. Use it only for flavors
    whose pool the operator sized and kept from Nova
    (``[compute] reserved_huge_pages``), with hugetlbfs mounted for each
    size. An explicit ``hw:mem_page_size`` (flavor) or
    ``hw_mem_page_size`` (image), any value including ``small``, is never
    changed; the huge pages Nova gives such flavors already compose with
    ``prealloc_threads``: libvirt preallocates them on the same threads.
"""

import os

from nova_gpu_ext.virt import tweaks
from nova_gpu_ext.virt import xmlconfig
from nova_gpu_ext.virt.tweaks import guestinfo

DEFAULT_MAX_THREADS = 16
DEFAULT_HUGEPAGE_SIZES_KB = (1048576, 2048)


def _nodes_text(nodes) -> str:
    nodes = sorted(nodes)
    return '%s %s' % ('node' if len(nodes) == 1 else 'nodes',
                      ','.join(str(n) for n in nodes))


def _membacking(guest) -> xmlconfig.GuestMemoryBacking:
    if guest.membacking is None:
        guest.membacking = xmlconfig.GuestMemoryBacking()
    return xmlconfig.promote(guest.membacking, xmlconfig.GuestMemoryBacking)


class PreallocThreads(tweaks.DomainTweak):
    name = 'prealloc_threads'
    summary = ('Preallocate guest memory on the CPUs of its NUMA node(s) '
               'before VFIO pins it (<allocation mode=immediate threads=N>)')
    min_libvirt_version = 8002000
    min_qemu_version = 5000000
    default_for_gpu_guests = True

    @staticmethod
    def available_cpus(guest, ctx) -> tuple[int, str]:
        """How many host CPUs preallocation can use, and why."""
        nodes = guestinfo.guest_host_nodes(guest)
        if nodes:
            cpus = guestinfo.node_cpus(ctx.host, nodes)
            if cpus:
                return len(cpus), '%s %s %d CPUs' % (
                    _nodes_text(nodes), 'has' if len(nodes) == 1 else 'have',
                    len(cpus))
        if guest.cpuset:
            return len(guest.cpuset), 'the guest runs on %d host CPUs' % (
                len(guest.cpuset))
        cpus = guestinfo.host_cpus(ctx.host)
        if cpus:
            return len(cpus), 'the host has %d CPUs' % len(cpus)
        count = ctx.settings.get('host_cpu_count') or os.cpu_count() or 1
        return int(count), 'the host has %d CPUs' % count

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        if not guestinfo.memory_pinning_devices(guest) and \
                ctx.request.tweak(self.name) is not True:
            # Nothing pins the memory (a render-node-only virgl guest):
            # preallocating would only add boot time and give up
            # overcommit. A flavor may still ask for it.
            return []
        cap = int(ctx.settings.get('prealloc_max_threads')
                  or DEFAULT_MAX_THREADS)
        count, why = self.available_cpus(guest, ctx)
        threads = min(count, cap)
        if threads < 2:
            return []
        current = guest.membacking
        if (current is not None and current.allocateimmediate and
                getattr(current, 'allocation_threads', None) == threads):
            return []
        membacking = _membacking(guest)
        membacking.allocateimmediate = True
        membacking.allocation_threads = threads
        return ['memoryBacking: allocation immediate, %d threads (%s, cap '
                '%d)' % (threads, why, cap)]


class HugePages(tweaks.DomainTweak):
    name = 'hugepages'
    summary = ('Back guest memory with free host huge pages (off by '
               'default: not accounted by Nova; never overrides '
               'hw:mem_page_size)')
    default_for_gpu_guests = False

    @staticmethod
    def _demand(guest, ctx):
        """[(guest cells or None, host nodes, KiB)] or None if unknown."""
        cells = guestinfo.guest_cells_memory_kb(guest)
        cell_nodes = guestinfo.cell_host_nodes(guest)
        if cells and all(cell_nodes.get(c) for c in cells):
            return [((cell,), cell_nodes[cell], kb)
                    for cell, kb in sorted(cells.items())]
        nodes = guestinfo.guest_host_nodes(guest)
        if nodes is None:
            if ctx.host is None or not ctx.host.numa_nodes:
                return None
            nodes = frozenset(n.id for n in ctx.host.numa_nodes)
        return [(tuple(sorted(cells)) or None, nodes, int(guest.memory))]

    @staticmethod
    def _free(host, nodes, size_kb) -> int:
        total = 0
        for node_id in nodes:
            node = host.node(node_id)
            if node is None:
                return 0
            total += dict(node.hugepages_free).get(size_kb, 0)
        return total

    def apply(self, guest, ctx):
        if not guestinfo.is_qemu_hvm(guest):
            return []
        if (guestinfo.flavor_spec(ctx, 'hw:mem_page_size') or
                guestinfo.image_property(ctx.image_meta,
                                         'hw_mem_page_size')):
            return []
        current = guest.membacking
        if current is not None and (current.hugepages or
                                    current.filesource):
            return []
        demand = self._demand(guest, ctx)
        if not demand or ctx.host is None:
            return []
        sizes = ctx.settings.get('hugepage_sizes_kb') or \
            DEFAULT_HUGEPAGE_SIZES_KB
        for size in (int(s) for s in sizes):
            if any(kb % size for _c, _n, kb in demand):
                continue
            # Cells bound to the same host nodes draw from the same pool.
            wanted: dict = {}
            for _cells, nodes, kb in demand:
                wanted[nodes] = wanted.get(nodes, 0) + kb // size
            free = {nodes: self._free(ctx.host, nodes, size)
                    for nodes in wanted}
            if all(free[n] >= wanted[n] for n in wanted):
                break
        else:
            return []
        membacking = _membacking(guest)
        lines = []
        for cells, nodes, kb in demand:
            page = xmlconfig.GuestMemoryBackingPage()
            page.size_kb = size
            page.nodeset = list(cells) if cells else None
            membacking.hugepages.append(page)
            lines.append(
                'memoryBacking: %d KiB huge pages for %d MiB%s on host %s '
                '(%d of %d free pages)' % (
                    size, kb // 1024,
                    ' of guest cell %s' % ','.join(map(str, cells))
                    if cells else '',
                    _nodes_text(nodes), kb // size, free[nodes]))
        return lines
