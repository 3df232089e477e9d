"""A restarted compute knows which guest uses which render node.

Nova's fake libvirt drops ``<graphics><gl>`` when it re-renders a domain,
so the functional harness cannot show this; here the driver's recovery
reads domain XML as real libvirt returns it.
"""

from nova_gpu_ext.virt import driver as gpu_driver
from nova_gpu_ext.virt import gpu_affinity

XML = """<domain type='kvm'><devices>
  <graphics type='egl-headless'><gl rendernode='/dev/dri/%s'/></graphics>
</devices></domain>"""


class FakeGuest:
    def __init__(self, uuid, render):
        self.uuid = uuid
        self._xml = XML % render if render else '<domain><devices/></domain>'

    def get_xml_desc(self):
        return self._xml


class FakeHost:
    def __init__(self, guests):
        self._guests = guests

    def list_guests(self, only_running=True):
        return self._guests


def test_recover_render_nodes_from_defined_domains():
    drv = object.__new__(gpu_driver.GPULibvirtDriver)
    drv._render_nodes = gpu_affinity.RenderNodeTracker()
    drv._host = FakeHost([FakeGuest('a', 'renderD128'),
                          FakeGuest('b', 'renderD128'),
                          FakeGuest('c', 'renderD129'),
                          FakeGuest('d', None)])
    drv._recover_render_nodes()
    assert drv._render_nodes.counts() == {'renderD128': 2, 'renderD129': 1}


def test_rewrite_migration_xml_puts_the_destination_choices_in():
    decision = {'render_node': '/dev/dri/renderD129', 'numa_node': '1',
                'cpuset': '6-11', 'numa_mode': 'strict'}
    xml = gpu_affinity.rewrite_migration_xml(
        "<domain><vcpu cpuset='0-5'>2</vcpu><numatune><memory "
        "mode='strict' nodeset='0'/></numatune><devices><graphics "
        "type='egl-headless'><gl rendernode='/dev/dri/renderD128'/>"
        "</graphics></devices></domain>", decision)
    assert "rendernode=\"/dev/dri/renderD129\"" in xml
    assert 'cpuset="6-11"' in xml and 'nodeset="1"' in xml
    assert gpu_affinity.rewrite_migration_xml('<domain/>', {}) == \
        '<domain/>'
