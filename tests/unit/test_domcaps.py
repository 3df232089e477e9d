"""GL facts from libvirt domain capabilities (virt/domcaps.py)."""

from nova_gpu_ext.core.summary import HostSummary
from nova_gpu_ext.virt import domcaps

# Abridged from `virsh domcapabilities --virttype qemu --machine q35` on
# this project's test machine (Debian 12: libvirt 9.0, QEMU 7.2).
DEBIAN12 = """<domainCapabilities>
  <path>/usr/bin/qemu-system-x86_64</path>
  <domain>qemu</domain>
  <machine>pc-q35-7.2</machine>
  <arch>x86_64</arch>
  <devices>
    <graphics supported='yes'>
      <enum name='type'>
        <value>sdl</value>
        <value>vnc</value>
        <value>spice</value>
        <value>egl-headless</value>
        <value>dbus</value>
      </enum>
    </graphics>
    <video supported='yes'>
      <enum name='modelType'>
        <value>vga</value>
        <value>cirrus</value>
        <value>qxl</value>
        <value>virtio</value>
        <value>none</value>
      </enum>
    </video>
  </devices>
</domainCapabilities>"""

NO_GL = DEBIAN12.replace('<value>egl-headless</value>', '')


def test_debian12_host_can_render():
    gl = domcaps.parse(DEBIAN12)
    assert gl == {'egl_headless': True, 'virtio_video': True}
    assert domcaps.refusal(gl) is None
    assert domcaps.traits(gl) == {domcaps.EGL_TRAIT}


def test_qemu_without_opengl_is_refused_with_the_reason():
    gl = domcaps.parse(NO_GL)
    assert domcaps.refusal(gl) == (
        'the host QEMU cannot render with a host GPU: no egl-headless '
        'graphics in its libvirt domain capabilities')
    assert domcaps.traits(gl) == set()
    no_video = domcaps.parse(NO_GL.replace('<value>virtio</value>', ''))
    assert 'no egl-headless graphics and no virtio video' in \
        domcaps.refusal(no_video)


def test_unknown_capabilities_refuse_nothing():
    # An older compute published no gl entry; libvirt could not answer.
    assert domcaps.refusal(None) is None
    assert domcaps.traits(None) == set()


def test_libvirt_error_gives_none():
    class Broken:
        def getDomainCapabilities(self, *args):
            raise RuntimeError('libvirt down')
    assert domcaps.read(Broken(), 'x86_64', 'kvm') is None


def test_render_nodes_without_a_device_node_are_not_usable(tmp_path):
    from nova_gpu_ext import model
    present = tmp_path / 'renderD128'
    present.write_text('')
    nodes = tuple(model.RenderNode(name=n, path=str(tmp_path / n),
                                   pci_address=None, numa_node=0)
                  for n in ('renderD128', 'renderD129'))
    topology = model.HostTopology(numa_nodes=(), gpus=(),
                                  render_nodes=nodes)
    kept = domcaps.with_present_render_nodes(None, topology)
    assert [r.name for r in kept.render_nodes] == ['renderD128']
    summary = {'render_nodes': [
        {'name': 'renderD128', 'path': str(present), 'present': True},
        {'name': 'renderD129', 'path': '/dev/dri/renderD129',
         'present': False},
        {'name': 'renderD130', 'path': '/dev/dri/renderD130'}]}
    usable, missing = HostSummary.from_dict(summary).usable_render_nodes()
    assert [r.name for r in usable] == ['renderD128', 'renderD130']
    assert missing == ['render node renderD129: /dev/dri/renderD129 does '
                       'not exist on the host']
