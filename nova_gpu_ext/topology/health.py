"""Host-side health of physical GPUs, needing no guest driver.

Layer rule: adapter (I/O) through :class:`SysfsPaths` only (the configurable
root); :func:`problems`, :func:`traits` and :func:`changes` are pure. What
the kernel shows in sysfs for every PCIe device:

* the link as trained against what the device and slot can do
  (``current_link_width``/``max_link_width``,
  ``current_link_speed``/``max_link_speed``): a GPU that trained at x8 in an
  x16 slot has half its bandwidth (a bad riser, a dirty contact);
* the AER counters (``aer_dev_correctable``, ``aer_dev_nonfatal``,
  ``aer_dev_fatal``, each ending with a ``TOTAL_ERR_*`` line);
* a device that vanished from the bus, or whose config space reads all ones
  (``vendor`` = 0xffff: it fell off the bus, typically after a failed
  reset).

Traits (on the GPU's resource provider), so that a flavor can keep degraded
GPUs out with ``trait:<name>=forbidden``:

* ``CUSTOM_GPU_LINK_DEGRADED``: link width below the maximum;
* ``CUSTOM_GPU_LINK_SLOW``: link speed below the maximum (GPUs also lower
  their link speed when idle to save power, so this one is informative);
* ``CUSTOM_GPU_AER_ERRORS``: an uncorrectable (non-fatal or fatal) AER error
  since boot, or correctable errors rising since nova-compute started;
* ``CUSTOM_GPU_FAILED``: vanished, or config space unreadable.
"""

import os
import re
from typing import Iterable, Optional

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader as sr

LINK_DEGRADED_TRAIT = 'CUSTOM_GPU_LINK_DEGRADED'
LINK_SLOW_TRAIT = 'CUSTOM_GPU_LINK_SLOW'
AER_TRAIT = 'CUSTOM_GPU_AER_ERRORS'
FAILED_TRAIT = 'CUSTOM_GPU_FAILED'
HEALTH_TRAITS = (LINK_DEGRADED_TRAIT, LINK_SLOW_TRAIT, AER_TRAIT,
                 FAILED_TRAIT)

AER_FILES = (('correctable', 'aer_dev_correctable'),
             ('nonfatal', 'aer_dev_nonfatal'),
             ('fatal', 'aer_dev_fatal'))
_SPEED_RE = re.compile(r'([0-9.]+)\s*GT/s')


def parse_speed(text: Optional[str]) -> Optional[float]:
    """``'16.0 GT/s PCIe'`` -> 16.0; None when unknown."""
    match = _SPEED_RE.search(text or '')
    return float(match.group(1)) if match else None


def parse_aer_total(text: str) -> int:
    """The ``TOTAL_ERR_*`` line of an AER counter file."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith('TOTAL_ERR'):
            return int(parts[1])
    raise ValueError('no TOTAL_ERR line')


def _int(reader, path):
    return reader.parsed(path, sr.parse_int, what='a link width') \
        if os.path.exists(path) else None


def read_one(paths, reader, address: str,
             previous: Optional[model.GPUHealth] = None) -> model.GPUHealth:
    base = paths.pci_device_dir(address)
    if not os.path.isdir(base):
        return model.GPUHealth(address=address, present=False)
    vendor = reader.parsed(os.path.join(base, 'vendor'), sr.parse_hex,
                           what='a vendor id')
    if vendor is None or vendor == 0xffff:
        return model.GPUHealth(address=address, responds=False)

    def text(name):
        path = os.path.join(base, name)
        return reader.text(path) if os.path.exists(path) else None
    aer = []
    for kind, name in AER_FILES:
        path = os.path.join(base, name)
        if os.path.exists(path):
            total = reader.parsed(path, parse_aer_total, what='AER counters')
            if total is not None:
                aer.append((kind, total))
    # Rising: above the totals of the first reading (until a restart).
    baseline = tuple(aer)
    if previous is not None and previous.present and previous.responds:
        baseline = previous.aer_baseline or previous.aer
    first = dict(baseline)
    rising = tuple(kind for kind, total in aer
                   if kind in first and total > first[kind])
    return model.GPUHealth(
        address=address,
        link_width=_int(reader, os.path.join(base, 'current_link_width')),
        max_link_width=_int(reader, os.path.join(base, 'max_link_width')),
        link_speed=text('current_link_speed') or None,
        max_link_speed=text('max_link_speed') or None,
        aer=tuple(aer), aer_baseline=baseline, aer_rising=rising)


def read_health(paths, reader, gpus: Iterable[model.GPU],
                previous: Iterable[model.GPUHealth] = ()):
    """Health of each physical GPU, and of those seen before and gone."""
    before = {h.address: h for h in previous}
    addresses = [str(g.address) for g in gpus
                 if g.kind is not model.GPUKind.VF]
    # A GPU that failed or vanished is no longer discovered as a display
    # function: keep watching the addresses seen before.
    addresses += sorted(set(before) - set(addresses))
    return tuple(read_one(paths, reader, a, before.get(a))
                 for a in addresses)


def problems(health: Optional[model.GPUHealth]) -> tuple:
    """(trait, message) for each problem; empty when healthy."""
    if health is None:
        return ()
    if not health.present:
        return ((FAILED_TRAIT, 'vanished from the PCI bus'),)
    if not health.responds:
        return ((FAILED_TRAIT, 'config space reads all ones (fell off the '
                               'bus or failed reset)'),)
    out = []
    if health.link_width is not None and health.max_link_width and \
            0 < health.link_width < health.max_link_width:
        out.append((LINK_DEGRADED_TRAIT, 'PCIe link trained at x%d of x%d' %
                    (health.link_width, health.max_link_width)))
    elif health.link_width == 0:
        out.append((FAILED_TRAIT, 'PCIe link down (width 0)'))
    speed = parse_speed(health.link_speed)
    top = parse_speed(health.max_link_speed)
    if speed is not None and top is not None and speed < top:
        out.append((LINK_SLOW_TRAIT, 'PCIe link at %s of %s' % (
            health.link_speed, health.max_link_speed)))
    aer = dict(health.aer)
    uncorrectable = aer.get('nonfatal', 0) + aer.get('fatal', 0)
    if uncorrectable or health.aer_rising:
        out.append((AER_TRAIT, 'AER errors: %s%s' % (
            ', '.join('%s %d' % kv for kv in health.aer),
            ' (rising: %s)' % ', '.join(health.aer_rising)
            if health.aer_rising else '')))
    return tuple(out)


def traits(health: Optional[model.GPUHealth]) -> set:
    return {trait for trait, _ in problems(health)}


def changes(previous: Iterable[model.GPUHealth],
            current: Iterable[model.GPUHealth]):
    """(address, new problems, cleared problems) for each GPU that changed.

    Compared by trait, so that a counter that keeps rising is reported when
    it starts, not on every reading.
    """
    before = {h.address: dict(problems(h)) for h in previous}
    out = []
    for health in current:
        now = dict(problems(health))
        old = before.get(health.address, {})
        new = [msg for trait, msg in now.items() if trait not in old]
        gone = [msg for trait, msg in old.items() if trait not in now]
        if new or gone:
            out.append((health.address, new, gone))
    return out
