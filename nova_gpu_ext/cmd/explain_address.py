"""The large-BAR part of ``explain`` and ``inspect``: devices, BARs, the
64-bit window and the address bits, for a flavor on a host.

Layer rule: adapter (CLI). Gathers the facts (the host's discovered BARs
and limits, the GPUs ``explain`` chose, the flavor's RAM and
``hw:maxphysaddr_*``, the firmware given by ``--firmware``) and calls
:func:`nova_gpu_ext.core.address_space.plan`, as the compute's
``large_bar`` tweak does; formats the result, nothing more.
"""

from nova_gpu_ext.core import address_space as core

MiB = 1 << 20


def add_arguments(parser):
    parser.add_argument('--firmware', choices=('uefi', 'bios'),
                        default='bios',
                        help="the image's hw_firmware_type (uefi: OVMF, "
                             "bios: SeaBIOS, Nova's default)")
    parser.add_argument('--machine', choices=('q35', 'pc'), default='q35',
                        help="the guest's machine type")


def limits_of(topology) -> core.HostLimits:
    limits = topology.address_limits
    return core.HostLimits(limits.cpu_bits, limits.iommu_bits,
                           limits.page_1g)


def explain(topology, result, extra_specs, memory_mb, firmware='bios',
            machine='q35'):
    """The address-space section of ``explain``'s result (a dict)."""
    decision = result.get('decision') or {}
    addresses = [str(a) for a in decision.get('gpus') or ()]
    by_address = {str(g.address): g for g in topology.gpus}
    devices = [core.GuestDevice(a, tuple(by_address[a].bars))
               for a in addresses if a in by_address and by_address[a].bars]
    mode = extra_specs.get('hw:maxphysaddr_mode')
    bits = extra_specs.get('hw:maxphysaddr_bits')
    shape = core.GuestShape(
        ram=memory_mb * MiB,
        firmware=core.Firmware.OVMF if firmware == 'uefi'
        else core.Firmware.SEABIOS,
        machine=core.Machine(machine))
    plan = core.plan(devices, shape, limits_of(topology),
                     operator_bits=int(bits) if mode and bits else None,
                     operator_passthrough=mode == 'passthrough' and
                     not bits)
    upstream = core.upstream_window(shape, devices)
    return {
        'devices': [{'address': d.name, 'bars': [
            {'index': b.index, 'size': b.size, '64bit': b.is_64bit,
             'prefetchable': b.prefetchable} for b in d.bars],
            'window': d.aperture} for d in devices],
        'host': {'cpu_bits': topology.address_limits.cpu_bits,
                 'iommu_bits': topology.address_limits.iommu_bits,
                 'page_1g': topology.address_limits.page_1g},
        'firmware': shape.firmware.value,
        'needed': plan.needed,
        'bits': plan.bits,
        'page_1g': plan.page_1g,
        'window': ({'base': plan.window.base, 'size': plan.window.size}
                   if plan.window else None),
        'operator_bits': plan.operator_bits,
        'refused': plan.refused,
        'warning': plan.warning,
        'notes': list(plan.notes),
        'upstream_assigned': core.assigned(
            devices, upstream, bits=core.QEMU_DEFAULT_BITS),
    }


def render(section) -> str:
    if not section or not section['devices']:
        return ''
    size = core.size_text
    parts = ['\nAddress space (large BARs, %s)\n' % section['firmware']]
    for dev in section['devices']:
        parts.append('  %s: %s -> window %s\n' % (
            dev['address'], ', '.join(
                'BAR%d %s%s%s' % (b['index'], size(b['size']),
                                  ' 64-bit' if b['64bit'] else '',
                                  ' pref' if b['prefetchable'] else '')
                for b in dev['bars']), size(dev['window'])))
    host = section['host']
    parts.append('  host: CPU %s bits, IOMMU %s bits, 1 GiB pages %s\n' % (
        _or(host['cpu_bits']), _or(host['iommu_bits']),
        _or(host['page_1g'])))
    for note in section['notes']:
        parts.append('  %s\n' % note)
    if section['refused']:
        parts.append('  REFUSED: %s\n' % section['refused'])
    elif section['warning']:
        parts.append('  WARNING: %s\n' % section['warning'])
    elif section['bits'] is None:
        parts.append('  nothing to change\n')
    else:
        parts.append("  driver emits: <maxphysaddr bits='%d'/>%s\n" % (
            section['bits'], ' + pdpe1gb' if section['page_1g'] else ''))
    parts.append('  upstream XML (40 bits): %d of %d device(s) get their '
                 'BARs\n' % (section['upstream_assigned'],
                             len(section['devices'])))
    return ''.join(parts)


def render_host(topology) -> str:
    """``inspect``'s section: the host's limits and each GPU's BARs."""
    limits = topology.address_limits
    lines = ['\nAddress space: CPU %s physical bits, IOMMU %s bits, '
             '1 GiB pages %s\n' % (_or(limits.cpu_bits),
                                   _or(limits.iommu_bits),
                                   _or(limits.page_1g))]
    for gpu in topology.gpus:
        window = [b for b in gpu.bars if b.is_64bit and b.prefetchable]
        if window:
            lines.append('  %s: 64-bit BARs %s\n' % (
                gpu.address, ', '.join('BAR%d %s' % (
                    b.index, core.size_text(b.size)) for b in window)))
    return ''.join(lines)


def _or(value):
    return '?' if value is None else value
