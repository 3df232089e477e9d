"""Boot lab: start the domain XML Nova defines on a real libvirtd + QEMU.

Layer rule: adapter for real libvirt (used by ``tests/e2e`` and
``benchmarks/bench_boot.py``, never by the driver). It builds a tiny guest
(:mod:`.guest`), rewrites a Nova domain XML so that it can start in this
sandbox, saying exactly what it stripped (:mod:`.domain`), starts it paused,
resumes it and times the boot phases on the serial console (:mod:`.runner`).

Where the XML comes from is up to the caller (a directory written by
``benchmarks/dump_xml.py`` or ``nova-gpu-ext demo --dump-xml``, or any file):
the lab takes XML text.
"""

import glob
import os
from typing import Optional

from nova_gpu_ext.bootlab import domain
from nova_gpu_ext.bootlab import guest as guest_mod
from nova_gpu_ext.bootlab import runner

BootError = runner.BootError
GuestBuildError = guest_mod.GuestBuildError
INIT_MARKER = guest_mod.INIT_MARKER

#: where the guest is built by default (readable by libvirt's QEMU user)
DEFAULT_WORK_DIR = os.environ.get(
    'NOVA_GPU_EXT_BOOTLAB_DIR',
    os.path.join(guest_mod.DEFAULT_E2E_DIR, 'guest'))


def read_sandbox_host(sysfs: str = '/sys') -> domain.SandboxHost:
    """CPUs, NUMA nodes and free huge pages of this host."""
    nodes = sorted(int(os.path.basename(p)[4:]) for p in glob.glob(
        os.path.join(sysfs, 'devices/system/node/node[0-9]*')))
    free = {}
    for path in glob.glob(os.path.join(sysfs,
                                       'kernel/mm/hugepages/hugepages-*kB')):
        size = int(os.path.basename(path)[len('hugepages-'):-2])
        try:
            with open(os.path.join(path, 'free_hugepages')) as f:
                free[size] = int(f.read())
        except (OSError, ValueError):
            free[size] = 0
    return domain.SandboxHost(cpus=os.cpu_count() or 1,
                              numa_nodes=tuple(nodes or [0]),
                              free_hugepages=free)


class BootLab:
    """One connection, one built guest; boots XML text on demand."""

    def __init__(self, work_dir: str = DEFAULT_WORK_DIR,
                 boot_mode: str = 'disk', virt_type: str = 'qemu',
                 uri: str = runner.URI, backend: Optional[str] = None,
                 kernel: Optional[str] = None):
        self.guest = guest_mod.build_guest(work_dir, kernel=kernel,
                                           with_disk=boot_mode == 'disk')
        if boot_mode == 'disk' and self.guest.disk is None:
            boot_mode = 'kernel'   # SYSLINUX tools missing
        self.boot_mode = boot_mode
        self.virt_type = virt_type
        self.host = read_sandbox_host()
        self.conn = runner.connect(uri, backend)
        self.libvirt_version, self.qemu_version = self.conn.versions()

    def describe(self) -> str:
        def v(n):
            return '%d.%d.%d' % (n // 1000000, n // 1000 % 1000, n % 1000)
        accel = 'KVM' if self.virt_type == 'kvm' else 'TCG (no KVM)'
        return ('libvirt %s, QEMU %s, %s, %s boot (%s), %d host CPUs, '
                'backend %s' % (
                    v(self.libvirt_version), v(self.qemu_version), accel,
                    self.boot_mode, 'SeaBIOS + SYSLINUX disk'
                    if self.boot_mode == 'disk' else 'SeaBIOS + -kernel',
                    self.host.cpus, self.conn.name))

    def prepare(self, xml: str, **kwargs) -> domain.Prepared:
        kernel_args = {}
        if self.boot_mode == 'kernel':
            kernel_args = dict(kernel=self.guest.kernel,
                               initrd=self.guest.initrd,
                               cmdline=self.guest.cmdline)
        return domain.prepare(
            xml, disk_image=self.guest.disk,
            virt_type=self.virt_type, host=self.host,
            **kernel_args, **kwargs)

    def boot(self, xml: str, timeout: float = 60.0,
             **kwargs) -> tuple:
        """Prepare and boot; return (Phases, Prepared)."""
        prepared = self.prepare(xml, **kwargs)
        return runner.boot(self.conn, prepared.xml, timeout), prepared

    def close(self):
        self.conn.close()
