"""Write the domain XML of UEFI q35 guests with 2 and 4 H100s (issue 22).

Usage::

    python benchmarks/dump_large_bar_xml.py --out DIR

Simulation (Nova's in-process functional harness, fakelibvirt): starts the
``hgx-h100-4`` layout (four H100 SXM5 whole GPUs, BAR1 128 GiB each, in the
fake sysfs our discovery reads) running ``GPULibvirtDriver`` and boots a
1 GiB, 1 vCPU UEFI q35 guest with 2 and with 4 GPUs, once with our driver
(``ours``) and once with ``[gpu_ext] enabled = false`` (``upstream``: the
config upstream's driver builds, unchanged). Writes
``DIR/gpus<N>.<variant>.xml`` and ``DIR/manifest.json``; ``tests/e2e/
test_large_bar.py`` boots them on real QEMU.
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from nova_gpu_ext.sim import harness  # noqa: E402
from nova_gpu_ext.sim import large_bar  # noqa: E402

OUT = {'dir': '.', 'manifest': []}
GPU_COUNTS = (2, 4)


class DumpScenario(harness.GPUExtTestBase):

    sysfs_sample = None
    ADDITIONAL_FILTERS = harness.GPUExtTestBase.ADDITIONAL_FILTERS + [
        'PciPassthroughFilter']

    def runTest(self):
        large_bar.start_host(self, 'hgx-host')
        image = large_bar.uefi_image(self)
        for gpus in GPU_COUNTS:
            flavor = large_bar.flavor(self, gpus)
            for variant, enabled in (('ours', True), ('upstream', False)):
                self.flags(enabled=enabled, group='gpu_ext')
                server = self._create_server(
                    name='gpus%d-%s' % (gpus, variant), flavor_id=flavor,
                    image_uuid=image, networks='none',
                    expected_state='ACTIVE')
                path = 'gpus%d.%s.xml' % (gpus, variant)
                with open(os.path.join(OUT['dir'], path), 'w') as f:
                    f.write(self.defined_xml[server['id']])
                OUT['manifest'].append(dict(file=path, gpus=gpus,
                                            variant=variant))
                self._delete_server(server)
        self.flags(enabled=True, group='gpu_ext')


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dump_large_bar_xml.py')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    OUT['dir'] = args.out
    ok = harness.run_case(DumpScenario('runTest'))
    with open(os.path.join(args.out, 'manifest.json'), 'w') as f:
        json.dump({'domains': OUT['manifest']}, f, indent=1)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
