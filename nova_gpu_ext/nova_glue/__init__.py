"""Code that calls or wraps Nova internals, shared by scheduler and compute.

Layer rule: the only place besides ``virt/``, ``scheduler/`` and ``api/``
that may import Nova's internals; it may use the pure core
(:mod:`nova_gpu_ext.core`) and :mod:`nova_gpu_ext.model`, never ``sim/``.
"""
