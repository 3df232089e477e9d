"""``nova-gpu-ext demo``: an all-in-one simulated Nova on a sample GPU host.

Layer rule: simulation. Runs as its own process (``python -m
nova_gpu_ext.sim.demo``) because Nova's threading patch must come before any
other import. It starts Nova's in-process services (API, conductor,
scheduler with our filter and weigher, placement, compute with our driver on
fakelibvirt), creates flavors with ``gpu:`` extra specs, boots servers and
prints what happened: where each server landed, its NUMA node and devices,
and what our driver changed in its domain XML.
"""

# autopep8: off
from nova_gpu_ext.sim import concurrency ; concurrency.patch()  # noqa
# autopep8: on

import argparse  # noqa: E402
import contextlib  # noqa: E402
import logging as std_logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

from lxml import etree  # noqa: E402

from nova_gpu_ext import model  # noqa: E402
from nova_gpu_ext.sim import harness  # noqa: E402
from nova_gpu_ext.sim import samplehost  # noqa: E402
from nova_gpu_ext.virt import guest_config  # noqa: E402

#: name -> (extra specs, what it shows)
DEMO_FLAVORS = (
    ('cpu.small', {}, 'no GPU: upstream XML, steered off GPU hosts'),
    ('vgpu.local', {'resources:VGPU': '1'},
     'mdev vGPU, NUMA-local by default'),
    ('vgpu.required', {'resources:VGPU': '1',
                       'gpu:numa_affinity_policy': 'required'},
     'mdev vGPU, must share the GPU node'),
    ('gpu.passthrough', {'pci_passthrough:alias': '%s:1' %
                         samplehost.GPU_ALIAS,
                         'gpu:numa_affinity_policy': 'required'},
     'whole GPU passed through'),
    ('virgl.desktop', {'gpu:render_node': 'numa-local',
                       'gpu:display': 'egl-headless'},
     'host-rendered 3D (virgl) on a local render node'),
    ('vgpu.too-big', {'resources:VGPU': '1',
                      'gpu:numa_affinity_policy': 'required'},
     '20 GiB vGPU guest, required: no NUMA node of the GPUs has room'),
)
#: flavors that differ from 2 GiB / 2 vCPUs
FLAVOR_MEMORY_MB = {'vgpu.too-big': 20480}


class Result:
    def __init__(self):
        self.rows = []
        self.xml = {}
        self.errors = []


RESULT = Result()


def guest_numa_nodes(xml):
    """Host NUMA node(s) the guest's memory is bound to, from its XML."""
    root = etree.fromstring(xml.encode())
    nodes = set()
    for el in root.iterfind('./numatune/memory'):
        nodes.add(el.get('nodeset'))
    for el in root.iterfind('./numatune/memnode'):
        nodes.add(el.get('nodeset'))
    return ','.join(sorted(n for n in nodes if n)) or '-'


def guest_devices(xml):
    root = etree.fromstring(xml.encode())
    out = []
    for hostdev in root.iterfind('./devices/hostdev'):
        if hostdev.get('type') == 'mdev':
            addr = hostdev.find('./source/address')
            out.append('mdev %s' % (addr.get('uuid')[:8] if addr is not None
                                    else '?'))
        elif hostdev.get('type') == 'pci':
            addr = hostdev.find('./source/address')
            out.append('pci %s' % model.PCIAddress.from_fields(*(
                addr.get(k) for k in ('domain', 'bus', 'slot', 'function'))))
    for gl in root.iterfind('./devices/graphics/gl'):
        if gl.get('rendernode'):
            out.append(gl.get('rendernode'))
    return ', '.join(out) or '-'


class DemoScenario(harness.GPUExtTestBase):
    """The demo as one scenario on the functional harness."""

    sysfs_sample = None
    with_upstream_twin = False

    def setUp(self):
        super().setUp()
        samplehost.configure(self)
        if self.with_upstream_twin:
            # The twins double the servers: past Nova's default quota.
            self.flags(instances=-1, cores=-1, ram=-1, group='quota')

    def runTest(self):
        samplehost.start_hosts(self)
        # A second resource update publishes the GPU providers, as a
        # compute does a minute after it starts.
        self._run_periodics()
        flavors = {}
        for name, extra_specs, what in DEMO_FLAVORS:
            flavors[name] = self._create_flavor(
                name=name, memory_mb=FLAVOR_MEMORY_MB.get(name, 2048),
                vcpu=2, extra_spec=extra_specs)
            RESULT.rows.append(self._boot(name, flavors[name], what))
        if self.with_upstream_twin:
            # Started last, so the scheduler never chose it above.
            # It gets what upstream accepts: GPUExtHostFilter keeps a
            # flavor with gpu: keys off it (upstream would ignore them),
            # so those have only our XML.
            twin = samplehost.start_upstream_twin(self)
            for name, flavor_id in flavors.items():
                body = self._build_server(
                    name='twin-' + name, flavor_id=flavor_id,
                    networks='none', host=twin)
                server = self.wait_until_settled(
                    self.api.post_server({'server': body}))
                if server['status'] == 'ACTIVE':
                    RESULT.xml[name + '.upstream'] = self.defined_xml[
                        server['id']]

    def _boot(self, name, flavor_id, what):
        start = time.monotonic()
        log_mark = len(self.stdlog.logger.output)
        # Posted directly: a refused build is part of the demo, not an error.
        body = self._build_server(
            name='demo-' + name, flavor_id=flavor_id, networks='none')
        server = self.api.post_server({'server': body})
        server = self.wait_until_settled(server)
        elapsed = time.monotonic() - start
        host = server.get('OS-EXT-SRV-ATTR:host') or '-'
        xml = self.defined_xml.get(server['id'], '')
        changes = []
        if host in self.computes:
            changes = guest_config.changes_of(
                self.computes[host].driver, server['id'])
        if xml:
            RESULT.xml[name + '.ours'] = xml
        refusals = [line.split('refused: ', 1)[1]
                    for line in self.stdlog.logger.output[log_mark:]
                    .splitlines() if 'GPUPlacementFilter: host' in line]
        devices = guest_devices(xml) if xml else '-'
        if xml:
            for mdev, parent in self.mdev_parents(server).items():
                devices = devices.replace('mdev %s' % mdev[:8], 'mdev %s on %s'
                                          % (mdev[:8], parent))
        return {
            'refusals': refusals,
            'flavor': name,
            'what': what,
            'status': server['status'],
            'host': host,
            'numa': guest_numa_nodes(xml) if xml else '-',
            'devices': devices,
            'changes': changes,
            'fault': (server.get('fault') or {}).get('message', ''),
            'seconds': elapsed,
        }


def print_table(rows, out):
    out.write('\nSIMULATED HOST: Nova %s in-process (API, conductor, '
              'scheduler, placement, compute on fake libvirt) on the '
              'built-in sample host "%s".\n\n' % (
                  _nova_version(), samplehost.DESCRIPTION))
    header = ('server', 'status', 'host', 'NUMA', 'devices')
    table = [header] + [
        ('demo-' + r['flavor'], r['status'], r['host'], r['numa'],
         r['devices']) for r in rows]
    widths = [max(len(str(row[i])) for row in table)
              for i in range(len(header))]
    for i, row in enumerate(table):
        out.write('  '.join(str(c).ljust(w) for c, w in zip(row, widths))
                  .rstrip() + '\n')
        if i == 0:
            out.write('  '.join('-' * w for w in widths) + '\n')
    out.write('\nWhat nova-gpu-ext changed in each domain XML:\n')
    for r in rows:
        out.write('  demo-%s (%s):\n' % (r['flavor'], r['what']))
        if r['fault']:
            out.write('    refused: %s\n' % r['fault'])
            for line in r.get('refusals', ()):
                out.write('    scheduler log: GPUPlacementFilter: %s\n' % line)
        if r['status'] == 'ERROR':
            continue
        for line in r['changes'] or ['nothing (upstream XML)']:
            out.write('    - %s\n' % line)


def _nova_version():
    try:
        # Lazy: only for the banner; a missing distribution is not an error.
        from importlib import metadata
        return metadata.version('nova')
    except Exception:
        return '?'


def main(argv=None):
    parser = argparse.ArgumentParser(prog='nova-gpu-ext demo')
    parser.add_argument('--dump-xml', metavar='DIR',
                        help='write each flavor\'s domain XML from our '
                             'driver and from upstream\'s (an upstream twin '
                             'host is started) to DIR')
    parser.add_argument('--verbose', action='store_true',
                        help='show the services\' logs')
    args = parser.parse_args(argv)
    if not args.verbose:
        # INFO stays on: the scheduler's refusal reasons are read from the
        # harness's captured log; the services' own output is dropped.
        std_logging.disable(std_logging.DEBUG)
        # Nova's thread pools announce their shutdown on stdout at INFO.
        std_logging.getLogger('nova.thread_pool_factory').disabled = True
    DemoScenario.with_upstream_twin = bool(args.dump_xml)
    start = time.monotonic()
    result = unittest.TestResult()
    if args.verbose:
        DemoScenario('runTest').run(result)
    else:
        with open(os.devnull, 'w') as devnull, \
                contextlib.redirect_stdout(devnull):
            DemoScenario('runTest').run(result)
    std_logging.disable(std_logging.NOTSET)
    for _test, trace in result.errors + result.failures:
        sys.stderr.write(trace)
    if result.errors or result.failures:
        sys.stderr.write('demo failed\n')
        return 1
    print_table(RESULT.rows, sys.stdout)
    if args.dump_xml:
        os.makedirs(args.dump_xml, exist_ok=True)
        for name, xml in sorted(RESULT.xml.items()):
            with open(os.path.join(args.dump_xml, name + '.xml'), 'w') as f:
                f.write(xml)
        sys.stdout.write('\nDomain XML written to %s\n' % args.dump_xml)
    sys.stdout.write('\nDone in %.1f s.\n' % (time.monotonic() - start))
    return 0


if __name__ == '__main__':
    sys.exit(main())
