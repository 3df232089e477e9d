"""Options of host topology discovery: where the host is read from."""

from oslo_config import cfg

from nova_gpu_ext.conf import base

ALL_OPTS = [
    cfg.StrOpt(
        'sysfs_root',
        default='/sys',
        help="""
Root of the sysfs tree that GPU topology discovery reads.

Every path discovery reads (NUMA nodes, PCI devices, IOMMU groups, SR-IOV
functions, mediated device types, DRM nodes) is built from this root. Change
it only to run nova-compute against a recorded or fake host, as the
devstack plugin and the functional tests do on machines without GPUs.

Possible values:

* An absolute path to a directory laid out like ``/sys``.

Related options:

* ``[gpu_ext] dev_root``: where the DRM device files live.
"""),
    cfg.StrOpt(
        'dev_root',
        default='/dev',
        help="""
Root of the device tree in which DRM render nodes are found.

A render node named ``renderD128`` in sysfs is handed to guests as
``<dev_root>/dri/renderD128``.

Possible values:

* An absolute path, normally ``/dev``.

Related options:

* ``[gpu_ext] sysfs_root``.
"""),
]


def register_opts(conf):
    conf.register_group(base.gpu_ext_group)
    conf.register_opts(ALL_OPTS, group=base.gpu_ext_group)


def list_opts():
    return [(base.gpu_ext_group, ALL_OPTS)]
