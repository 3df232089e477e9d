"""Write the domain XML upstream's driver and ours define for some flavors.

Usage::

    python benchmarks/dump_xml.py --out DIR [--set gpu|e2e] [--ablation]
        [--option NAME=VALUE ...]

Simulation (Nova's in-process functional harness, fakelibvirt): starts the
built-in sample GPU host running ``GPULibvirtDriver``, a CPU-only host
running it too, and an "upstream twin" of the GPU host running upstream's
``LibvirtDriver``. Each flavor is booted once per variant, the XML passed to
``defineXML`` is written to ``DIR/<flavor>.<variant>.xml`` and the server is
deleted again (so 16 GiB guests never pile up on the fake host):

* ``upstream``: upstream's driver (the twin host);
* ``ours``: our driver with the given ``[gpu_ext]`` options;
* with ``--ablation``, for every installed domain tweak T:
  ``minus-T`` (ours with ``[gpu_ext] enabled_tweaks`` = all but T) and
  ``plus-T`` (ours with only T enabled: upstream's XML plus one tweak).

``DIR/manifest.json`` lists every file with its flavor, memory, variant,
options and what our driver reported it changed. ``benchmarks/bench_boot.py``
and ``tests/e2e`` read it.

Flavor sets: ``gpu`` = vGPU flavors (``resources:VGPU=1``) of 2 GiB and
16 GiB; ``e2e`` = GPU-less flavors (plain; ``hw:boot_menu``; opted into
fast boot with ``gpu:fast_boot=true``) and a 2 GiB vGPU flavor.
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

from nova_gpu_ext.sim import harness  # noqa: E402
from nova_gpu_ext.sim import samplehost  # noqa: E402

#: set -> [(flavor name, memory MiB, vCPUs, extra specs, host role)]
FLAVOR_SETS = {
    'gpu': [
        ('vgpu-2g', 2048, 2, {'resources:VGPU': '1'}, 'gpu'),
        ('vgpu-16g', 16384, 2, {'resources:VGPU': '1'}, 'gpu'),
    ],
    'e2e': [
        ('cpu-plain', 1024, 1, {}, 'cpu'),
        ('cpu-bootmenu', 1024, 1, {'hw:boot_menu': 'true'}, 'cpu'),
        ('cpu-fastboot', 1024, 2, {'gpu:fast_boot': 'true'}, 'cpu'),
        ('vgpu-2g', 2048, 2, {'resources:VGPU': '1'}, 'gpu'),
    ],
}


class Job:
    flavor_set = 'gpu'
    ablation = False
    options: dict = {}
    out_dir = '.'
    manifest: list = []
    tweak_names: list = []


class DumpScenario(harness.GPUExtTestBase):
    """Boot each flavor per variant and capture the defined XML."""

    sysfs_sample = None

    def setUp(self):
        super().setUp()
        samplehost.configure(self)

    def runTest(self):
        hosts = samplehost.start_hosts(self)
        hosts['upstream'] = samplehost.start_upstream_twin(self)
        from nova_gpu_ext.virt import tweaks
        Job.tweak_names = sorted(tweaks.load_tweaks())
        base = dict(Job.options)
        variants = [('upstream', None, {}), ('ours', 'ours', base)]
        if Job.ablation:
            for name in Job.tweak_names:
                rest = [n for n in Job.tweak_names if n != name]
                variants.append(('minus-' + name, 'ours',
                                 dict(base, enabled_tweaks=rest)))
                variants.append(('plus-' + name, 'ours',
                                 dict(base, enabled_tweaks=[name])))
        for flavor, memory_mb, vcpus, specs, role in \
                FLAVOR_SETS[Job.flavor_set]:
            flavor_id = self._create_flavor(
                name=flavor, memory_mb=memory_mb, vcpu=vcpus, disk=1,
                ephemeral=0, extra_spec=specs)
            # Upstream computes refuse gpu: keys (GPUExtHostFilter): the
            # twin gets the same flavor without them.
            plain = {k: v for k, v in specs.items()
                     if not k.startswith('gpu:')}
            twin_id = flavor_id if plain == specs else self._create_flavor(
                name=flavor + '-upstream', memory_mb=memory_mb, vcpu=vcpus,
                disk=1, ephemeral=0, extra_spec=plain)
            for variant, driver, options in variants:
                host = hosts['upstream'] if driver is None else hosts[role]
                self._dump(flavor, memory_mb, specs, variant, host,
                           twin_id if driver is None else flavor_id,
                           options)

    def _dump(self, flavor, memory_mb, specs, variant, host, flavor_id,
              options):
        for name, value in options.items():
            self.flags(**{name: value, 'group': 'gpu_ext'})
        try:
            server = self._create_server(
                name='%s-%s' % (flavor, variant), flavor_id=flavor_id,
                networks='none', host=host, expected_state='ACTIVE')
            xml = self.defined_xml[server['id']]
            changes = []
            if host in self.computes and hasattr(
                    self.computes[host].driver, 'guest_changes'):
                changes = self.computes[host].driver.guest_changes.get(
                    server['id'], [])
            path = '%s.%s.xml' % (flavor, variant)
            with open(os.path.join(Job.out_dir, path), 'w') as f:
                f.write(xml)
            Job.manifest.append(dict(
                file=path, flavor=flavor, memory_mb=memory_mb,
                extra_specs=specs, variant=variant, host=host,
                options=options, changes=changes))
            self._delete_server(server)
        finally:
            for name in options:
                self.flags(**{name: None, 'group': 'gpu_ext'})


def _parse_option(text):
    name, _, value = text.partition('=')
    if not value:
        raise argparse.ArgumentTypeError('expected NAME=VALUE: %s' % text)
    if value.lower() in ('true', 'false'):
        return name, value.lower() == 'true'
    if name in ('enabled_tweaks',):
        return name, [v for v in value.split(',') if v]
    try:
        return name, int(value)
    except ValueError:
        return name, value


def main(argv=None):
    parser = argparse.ArgumentParser(prog='dump_xml.py')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--set', default='gpu', choices=sorted(FLAVOR_SETS),
                        dest='flavor_set')
    parser.add_argument('--ablation', action='store_true',
                        help='also write minus-T and plus-T variants for '
                             'every installed tweak T')
    parser.add_argument('--option', action='append', default=[],
                        type=_parse_option, metavar='NAME=VALUE',
                        help='a [gpu_ext] option for our driver')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    Job.flavor_set = args.flavor_set
    Job.ablation = args.ablation
    Job.options = dict(args.option)
    Job.out_dir = args.out
    Job.manifest = []
    start = time.monotonic()
    ok = harness.run_case(DumpScenario('runTest'), quiet=not args.verbose)
    with open(os.path.join(args.out, 'manifest.json'), 'w') as f:
        json.dump({'tweaks': Job.tweak_names, 'options': Job.options,
                   'flavor_set': Job.flavor_set, 'domains': Job.manifest},
                  f, indent=1, sort_keys=True)
    sys.stdout.write('%d domain XML(s) written to %s in %.1f s\n' % (
        len(Job.manifest), args.out, time.monotonic() - start))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
