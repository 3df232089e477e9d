"""The demo, run as a user runs it: ``nova-gpu-ext demo --dump-xml DIR``."""

import os
import subprocess
import sys
import tempfile

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class DemoDumpXMLTest(testtools.TestCase):

    def test_dump_xml_writes_ours_and_upstreams_where_upstream_boots(self):
        out = tempfile.mkdtemp(prefix='demo-xml-')
        self.addCleanup(subprocess.call, ['rm', '-rf', out])
        proc = subprocess.run(
            [sys.executable, '-m', 'nova_gpu_ext.cmd.main', 'demo',
             '--dump-xml', out],
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        self.assertEqual(0, proc.returncode, proc.stderr[-3000:])
        files = set(os.listdir(out))
        # Every flavor that went ACTIVE on our host has our XML.
        for name in ('cpu.small', 'vgpu.local', 'vgpu.required',
                     'gpu.passthrough', 'virgl.desktop'):
            self.assertIn(name + '.ours.xml', files)
        # Upstream's twin boots what upstream accepts: the CPU-only
        # flavor and a plain vGPU; a gpu: flavor is kept off it by
        # GPUExtHostFilter (upstream would ignore the keys).
        self.assertIn('cpu.small.upstream.xml', files)
        self.assertIn('vgpu.local.upstream.xml', files)
        self.assertNotIn('vgpu.required.upstream.xml', files)
        with open(os.path.join(out, 'cpu.small.ours.xml')) as f:
            ours = f.read()
        self.assertIn('<domain', ours)
