"""Host topology discovery: the only code that reads the host.

Layer rule: adapter (I/O). Every path comes from one
:class:`~nova_gpu_ext.topology.paths.SysfsPaths` root, never a bare ``/sys``.
Readers per concern (``numa``, ``pci``, ``sriov``, ``mdev``, ``drm``) return
plain values and record a warning for each fact they could not read;
:func:`~nova_gpu_ext.topology.discover.discover_host` composes them into a
frozen :class:`~nova_gpu_ext.model.HostTopology`. A missing or malformed file
degrades that one fact; discovery never raises for the host's content.
"""
