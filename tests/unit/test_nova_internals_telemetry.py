"""Pins the Nova internals boot telemetry relies on (issue 15; see
doc/source/reference/nova-internals.rst). Each fails when Nova changes."""

import inspect

from nova.compute import task_states
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import guest as libvirt_guest


def test_create_guest_signature_and_define_callback():
    sig = inspect.signature(libvirt_driver.LibvirtDriver._create_guest)
    assert list(sig.parameters)[:4] == ['self', 'context', 'xml',
                                        'instance']
    for name, default in (('power_on', True), ('pause', False),
                          ('post_xml_callback', None)):
        assert sig.parameters[name].default == default, name
    source = inspect.getsource(libvirt_driver.LibvirtDriver._create_guest)
    # The callback runs right after the domain is defined, before launch.
    assert source.index('Guest.create(') < source.index(
        'post_xml_callback()') < source.index('guest.launch(pause=pause)')


def test_create_guest_with_network_resumes_the_returned_guest():
    source = inspect.getsource(
        libvirt_driver.LibvirtDriver._create_guest_with_network)
    assert 'guest = self._create_guest(' in source
    assert 'post_xml_callback=post_xml_callback' in source
    assert 'pause=pause' in source
    assert 'guest.resume()' in source


def test_guest_attributes():
    assert isinstance(libvirt_guest.Guest.name, property)
    assert callable(libvirt_guest.Guest.get_xml_desc)
    assert callable(libvirt_guest.Guest.resume)
    assert 'pause' in inspect.signature(libvirt_guest.Guest.launch).parameters


def test_spawn_runs_in_spawning_task_state():
    assert task_states.SPAWNING == 'spawning'


def test_instance_action_event_create_takes_times():
    objects.register_all()
    cls = objects.InstanceActionEvent
    for field in ('event', 'start_time', 'finish_time', 'result', 'host',
                  'details'):
        assert field in cls.fields, field
    assert list(inspect.signature(cls.create).parameters) == [
        'self', 'instance_uuid', 'request_id']
