"""GPU BARs and host address limits as the fake sysfs writes them.

Layer rule: simulation (test code). The documented BAR1 sizes of
data-center GPUs (with their sources) and the sysfs ``resource`` format
(kernel Documentation/PCI/sysfs-pci.rst), for :mod:`.fake_sysfs`.
"""

NVIDIA = 0x10de
GiB = 1 << 30
MiB = 1 << 20
#: BAR1 (framebuffer / HBM aperture) of data-center GPUs by (vendor,
#: device), as the vendors document them; every NVIDIA card here also has
#: BAR0 16 MiB (32-bit) and BAR3 32 MiB (64-bit prefetchable), from the
#: same product briefs' "BAR address" tables.
DOCUMENTED_BAR1 = {
    # H100 PCIe: NVIDIA H100 PCIe Product Brief PB-11133-001
    (NVIDIA, 0x2331): 128 * GiB,
    # H100 SXM5 (HGX H100): same BAR layout as the PCIe card (issue 22)
    (NVIDIA, 0x2330): 128 * GiB,
    # H100 NVL: NVIDIA H100 NVL Product Brief (issue 22)
    (NVIDIA, 0x2321): 128 * GiB,
    # B200 (HGX B200): 256 GiB (issue 22, NVIDIA HGX B200 documentation)
    (NVIDIA, 0x2901): 256 * GiB,
    # A100 SXM4/PCIe 40GB: NVIDIA A100 PCIe Product Brief PB-10137
    (NVIDIA, 0x20b0): 64 * GiB,
    (NVIDIA, 0x20f1): 64 * GiB,
    # A100 80GB PCIe: same brief, 80 GB edition
    (NVIDIA, 0x20b5): 128 * GiB,
    # L40S: NVIDIA L40S Product Brief
    (NVIDIA, 0x26b9): 64 * GiB,
    # A40: NVIDIA A40 Product Brief PB-09976-001
    (NVIDIA, 0x2235): 64 * GiB,
    # T4: NVIDIA T4 Product Brief PB-09256
    (NVIDIA, 0x1eb8): 256 * MiB,
}
#: include/linux/ioport.h
_MEM, _PREF, _MEM64 = 0x200, 0x2000, 0x00100000
#: a Xeon Scalable host: /proc/cpuinfo "address sizes" and a VT-d cap
#: register whose MGAW (bits 21:16) is 47, i.e. 48 bits
DEFAULT_CPU_BITS = 46
DEFAULT_VTD_CAP = '8d2078c106f0466'


def resource_text(bars, base=0x20000000000):
    """A sysfs ``resource`` file: ``start end flags`` per BAR 0-5 and the
    ROM line (Documentation/PCI/sysfs-pci.rst); ``bars`` maps BAR index
    to (size, 64-bit, prefetchable)."""
    lines = []
    cursor = base
    for index in range(7):
        if index not in bars:
            lines.append('0x%016x 0x%016x 0x%016x' % (0, 0, 0))
            continue
        size, is64, pref = bars[index]
        cursor = -(-cursor // size) * size
        flags = _MEM | (_MEM64 if is64 else 0) | (_PREF if pref else 0)
        lines.append('0x%016x 0x%016x 0x%016x' % (
            cursor, cursor + size - 1, flags))
        cursor += size
    return '\n'.join(lines) + '\n'


def bars_of(vendor, device):
    bar1 = DOCUMENTED_BAR1.get((vendor, device))
    if bar1 is None:
        return {}
    return {0: (16 * MiB, False, False), 1: (bar1, True, True),
            3: (32 * MiB, True, True)}
