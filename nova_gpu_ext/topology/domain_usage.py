"""What the guests on a host commit per NUMA node, read from domain XML.

Layer rule: host reading (topology). Parses libvirt domain XML (``virsh
dumpxml``, the XML a driver defined) into per-node commitments, of two
kinds:

* ``cells``: guest NUMA cells (``<cpu><numa><cell>``, each on the host node
  its ``<numatune><memnode>`` names): Nova's NUMA guests, and every GPU guest
  nova-gpu-ext places since issue 10 (a one-cell topology in Nova's books);
* ``bound``: a guest without cells whose memory is bound to one node
  (``<numatune><memory nodeset='N'>``, mode ``strict`` or ``preferred``):
  guests bound the old way, before the upgrade, which Nova does not count
  per node.

A malformed document counts as nothing (never raises).
"""

import dataclasses
import os

from lxml import etree


@dataclasses.dataclass(frozen=True)
class GuestUse:
    """One guest's commitment: {host node: (vCPUs, MiB)} and its kind."""

    nodes: dict
    kind: str = None            # 'cells', 'strict', 'preferred' or None


def _mib(value, unit):
    value = int(value)
    unit = (unit or 'KiB').lower()
    if unit in ('kib', 'k'):
        return value // 1024
    if unit in ('mib', 'm'):
        return value
    if unit in ('gib', 'g'):
        return value * 1024
    return value // (1024 * 1024)       # bytes


def _count_cpus(spec):
    total = 0
    for part in (spec or '').split(','):
        part = part.strip()
        if not part or part.startswith('^'):
            continue
        low, _, high = part.partition('-')
        total += (int(high) - int(low) + 1) if high else 1
    return total


def guest_use(xml):
    """The :class:`GuestUse` of one domain XML document."""
    try:
        root = etree.fromstring(xml.encode() if isinstance(xml, str)
                                else xml)
        cells = root.findall('./cpu/numa/cell')
        if cells:
            memnodes = {m.get('cellid'): m.get('nodeset')
                        for m in root.iterfind('./numatune/memnode')}
            out = {}
            for cell in cells:
                nodeset = memnodes.get(cell.get('id'))
                if nodeset is None or not nodeset.isdigit():
                    continue
                cpus, mib = out.get(int(nodeset), (0, 0))
                out[int(nodeset)] = (
                    cpus + _count_cpus(cell.get('cpus')),
                    mib + _mib(cell.get('memory'), cell.get('unit')))
            return GuestUse(out, 'cells')
        memory = root.find('./numatune/memory')
        nodeset = memory.get('nodeset') if memory is not None else None
        if nodeset and nodeset.isdigit():
            total = root.find('./memory')
            vcpu = root.find('./vcpu')
            return GuestUse(
                {int(nodeset): (int(vcpu.text) if vcpu is not None else 0,
                                _mib(total.text, total.get('unit')))},
                memory.get('mode') or 'strict')
    except (etree.XMLSyntaxError, ValueError, TypeError, AttributeError):
        pass
    return GuestUse({}, None)


def node_usage(xmls):
    """{host node: {'cells_mb', 'cells_vcpus', 'bound_mb', 'bound_vcpus',
    'guests'}} over a host's domain XML documents (strict and preferred
    bindings both count as bound)."""
    out = {}
    for xml in xmls:
        use = guest_use(xml)
        for node, (cpus, mib) in use.nodes.items():
            row = out.setdefault(node, {'cells_mb': 0, 'cells_vcpus': 0,
                                        'bound_mb': 0, 'bound_vcpus': 0,
                                        'guests': 0})
            prefix = 'cells' if use.kind == 'cells' else 'bound'
            row[prefix + '_mb'] += mib
            row[prefix + '_vcpus'] += cpus
            row['guests'] += 1
    return out


def read_documents(paths):
    """The XML documents in ``paths`` (files, or directories of ``*.xml``).
    Raises OSError for a path that cannot be read."""
    docs = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith('.xml'))
            files = [os.path.join(path, n) for n in names]
        else:
            files = [path]
        for name in files:
            with open(name, 'rb') as f:
                docs.append(f.read())
    return docs
