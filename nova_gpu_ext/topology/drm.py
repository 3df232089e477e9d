"""Read DRM nodes (``renderD*``, ``card*``) and the device behind each.

Layer rule: adapter (I/O) through :class:`SysfsPaths`; see the package
docstring for the error rule. A render node without a PCI parent (vgem,
virtio on a platform bus) is kept with ``pci_address=None``.
"""

import os
import re

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader as sr

_DRM_NODE_RE = re.compile(r'^(renderD\d+|card\d+)$')


def read_drm_nodes(paths, reader):
    """All DRM render and card nodes."""
    nodes = []
    for name in reader.listdir(paths.drm_class_dir):
        if not _DRM_NODE_RE.match(name):
            continue
        # class/drm/<name> links to <device>/drm/<name>: the device that
        # owns the node is two levels up (a PCI function, or a platform
        # device such as vgem).
        real = reader.realpath(os.path.join(paths.drm_class_dir, name))
        if real is None:
            continue
        device = os.path.dirname(os.path.dirname(real))
        device_name = os.path.basename(device)
        pci_address = None
        numa_node = None
        try:
            pci_address = model.PCIAddress.parse(device_name)
        except ValueError:
            pci_address = None
        if pci_address is not None:
            numa_node = reader.parsed(os.path.join(device, 'numa_node'),
                                      sr.parse_int, what='a NUMA node')
        nodes.append(model.RenderNode(
            name=name,
            path=paths.dri_device(name),
            pci_address=pci_address,
            numa_node=numa_node,
            driver=reader.link_name(os.path.join(device, 'driver')),
        ))
    return tuple(sorted(nodes, key=_drm_sort_key))


def _drm_sort_key(node):
    match = re.match(r'^([a-zA-Z]+)(\d+)$', node.name)
    return (match.group(1), int(match.group(2))) if match else (node.name, 0)
