"""Options of boot phase telemetry and GPU health: where records go."""

from oslo_config import cfg

from nova_gpu_ext.conf import base

ALL_OPTS = [
    cfg.BoolOpt(
        'boot_telemetry',
        default=True,
        help="""
Time the boot phases of every build on this compute.

For each server built here, the driver records how long each phase took:
request to domain defined, defined to QEMU started, QEMU init (started to
vCPUs resumed), firmware (resume to the first console output) and the guest
kernel's first line. Phases are recorded as instance action events
(``gpu_ext_boot_<phase>``, listed by ``openstack server event show``; GPU
guests only, a guest without a GPU gets no database write of ours), one
INFO log line per build, a line in the local record read by
``nova-gpu-ext boot-report``, and a summary in the compute node's stats
(key ``gpu_ext_boot``). Phases that libvirt does not let the driver see are
left out, never estimated.

Possible values:

* True: time every build.
* False: record nothing.

Related options:

* ``[gpu_ext] state_dir``: where the local record is written.
* ``[gpu_ext] boot_console_timeout``.
"""),
    cfg.StrOpt(
        'state_dir',
        default='$state_path/gpu_ext',
        help="""
Directory where nova-gpu-ext keeps its small local state on a compute.

The boot phase record ``boot-phases.jsonl`` (one JSON object per build, the
most recent 1000 builds) is written here and read by
``nova-gpu-ext boot-report``.

Possible values:

* An absolute path writable by nova-compute.

Related options:

* ``[DEFAULT] state_path``: the default is below it.
* ``[gpu_ext] boot_telemetry``.
"""),
    cfg.IntOpt(
        'boot_console_timeout',
        default=300,
        min=1,
        help="""
Seconds to watch a new guest's console log for its first output.

After the vCPUs are resumed, the driver watches the console log (the file
libvirt's virtlogd writes) for the first output (ending the firmware phase)
and the guest kernel's first line. A guest that prints nothing on its serial
console within this time gets no firmware or kernel phase.

Possible values:

* A positive number of seconds.

Related options:

* ``[gpu_ext] boot_telemetry``.
"""),
]


def register_opts(conf):
    conf.register_group(base.gpu_ext_group)
    conf.register_opts(ALL_OPTS, group=base.gpu_ext_group)


def list_opts():
    return [(base.gpu_ext_group, ALL_OPTS)]
