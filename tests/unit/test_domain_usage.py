"""Issue 10: per-node commitments read from domain XML, and
``nova-gpu-ext explain --domain-xml`` with both kinds of guests."""

import io
import json

from nova_gpu_ext.cmd import main as cli
from nova_gpu_ext.topology import domain_usage

# A one-cell NUMA guest (Nova's books): 2 vCPUs, 32 GiB on host node 1.
CELLS = """<domain type='kvm'><name>a</name>
<memory unit='KiB'>33554432</memory><vcpu>2</vcpu>
<cpu><numa><cell id='0' cpus='0-1' memory='33554432' unit='KiB'/></numa>
</cpu><numatune><memory mode='strict' nodeset='1'/>
<memnode cellid='0' mode='strict' nodeset='1'/></numatune></domain>"""
# A guest bound the old way (before the upgrade): 4 vCPUs, 30 GiB strict.
BOUND = """<domain type='kvm'><name>b</name>
<memory unit='KiB'>31457280</memory><vcpu cpuset='8-15'>4</vcpu>
<numatune><memory mode='strict' nodeset='1'/></numatune></domain>"""
PLAIN = "<domain type='kvm'><name>c</name><memory>1048576</memory></domain>"


def test_guest_use_kinds():
    assert domain_usage.guest_use(CELLS) == domain_usage.GuestUse(
        {1: (2, 32768)}, 'cells')
    assert domain_usage.guest_use(BOUND) == domain_usage.GuestUse(
        {1: (4, 30720)}, 'strict')
    assert domain_usage.guest_use(PLAIN).nodes == {}
    assert domain_usage.guest_use('<not xml').nodes == {}


def test_node_usage_sums_both_kinds():
    usage = domain_usage.node_usage([CELLS, BOUND, PLAIN])
    assert usage == {1: {'cells_mb': 32768, 'cells_vcpus': 2,
                         'bound_mb': 30720, 'bound_vcpus': 4, 'guests': 2}}


def test_explain_counts_both_kinds_of_guests(tmp_path):
    for name, xml in (('a.xml', CELLS), ('b.xml', BOUND), ('c.xml', PLAIN)):
        (tmp_path / name).write_text(xml)
    argv = ['explain', '--sample', 'nvidia_vgpu_mdev', '--domain-xml',
            str(tmp_path), '--memory-mb', '4096', '--spec',
            'resources:VGPU=1', 'gpu:numa_affinity_policy=required']
    out = io.StringIO()
    args = cli.build_parser().parse_args(argv + ['--format', 'json'])
    assert args.func(args, out=out) == 0
    result = json.loads(out.getvalue())
    nodes = {n['id']: n for n in result['nodes']}
    assert nodes[1]['free_memory_mb'] == 65536 - 32768 - 30720
    assert nodes[1]['free_cpus'] == 8 - 6
    assert result['node_usage']['1']['guests'] == 2
    # node 1 has 2 GiB left: the 4 GiB guest goes to a GPU on node 0
    assert result['decision']['node'] == 0
    out = io.StringIO()
    args = cli.build_parser().parse_args(argv)
    args.func(args, out=out)
    assert 'Committed per NUMA node' in out.getvalue()
    assert '32768/2' in out.getvalue() and '30720/4' in out.getvalue()
