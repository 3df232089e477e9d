"""A simulated all-in-one Nova with nova-gpu-ext, for the demo and tests.

Layer rule: simulation only, never imported by the driver, filters or API.
It runs Nova's own in-process functional harness (API, conductor, scheduler,
placement, compute on Nova's fakelibvirt), which ships in the nova wheel as
``nova.tests``; callers must call :func:`nova_gpu_ext.sim.concurrency.patch`
first (native threading, Nova 34's default for nova-compute;
``OS_NOVA_DISABLE_EVENTLET_PATCHING=0`` selects eventlet).
"""
