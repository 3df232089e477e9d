"""Read mediated device types per parent, and existing mdevs.

Layer rule: adapter (I/O) through :class:`SysfsPaths`; see the package
docstring for the error rule.
"""

import os

from nova_gpu_ext import model
from nova_gpu_ext.topology import sysfs_reader as sr


def read_mdev_types(reader, device_path, entries):
    if 'mdev_supported_types' not in entries:
        return ()
    base = os.path.join(device_path, 'mdev_supported_types')
    types = []
    for name in reader.listdir(base):
        type_dir = os.path.join(base, name)
        if not os.path.isdir(type_dir):
            continue
        types.append(model.MdevType(
            name=name,
            label=reader.text(os.path.join(type_dir, 'name')) or None,
            description=reader.text(
                os.path.join(type_dir, 'description')) or None,
            device_api=reader.text(
                os.path.join(type_dir, 'device_api')) or None,
            available_instances=reader.parsed(
                os.path.join(type_dir, 'available_instances'),
                sr.parse_count, required=True, what='an instance count'),
        ))
    return tuple(types)


def read_mdevs(paths, reader):
    """Existing mdevs by parent address."""
    by_parent = {}
    for uuid in reader.listdir(paths.mdev_devices_dir):
        link = os.path.join(paths.mdev_devices_dir, uuid)
        try:
            target = os.readlink(link)
        except OSError:
            target = None
        parent_name = (os.path.basename(os.path.dirname(target.rstrip('/')))
                       if target else None)
        try:
            parent = model.PCIAddress.parse(parent_name or '')
        except ValueError:
            reader.warn('%s: cannot tell its parent device' % link)
            continue
        type_name = reader.link_name(os.path.join(link, 'mdev_type'))
        by_parent.setdefault(parent, []).append(
            model.Mdev(uuid=uuid, type_name=type_name, parent=parent))
    return {parent: tuple(sorted(mdevs, key=lambda m: m.uuid))
            for parent, mdevs in by_parent.items()}
