"""Scenarios on the one-machine cloud, through the public APIs only.

Layer rule: cloud scenario tests (see cloudlib).
"""

import socket
import time

import pytest

from tests.cloud import cloudlib

pytestmark = pytest.mark.cloud


def _console_shows_marker(conn, server, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = conn.compute.get_server_console_output(server)['output']
        if cloudlib.MARKER in out:
            return True
        time.sleep(2)
    return False


def _create_action_events(conn, server, want_boot_events):
    """Names of the events of the server's create action; when
    ``want_boot_events``, wait (bounded) until our boot phases are in."""
    actions = list(conn.compute.server_actions(server))
    create = [a for a in actions if a.action == 'create']
    assert create, actions
    # The phases are recorded once the guest kernel's first line is seen.
    deadline = time.monotonic() + (120 if want_boot_events else 0)
    while True:
        action = conn.compute.get_server_action(create[0].request_id,
                                                server)
        names = [e['event'] for e in action.events]
        if any(n.startswith('gpu_ext_boot_') for n in names) or \
                time.monotonic() > deadline:
            return action, names
        time.sleep(2)


def _fast_boot_flavor(conn):
    """A GPU-less flavor that asks something of ours (gpu:fast_boot)."""
    name = 'ct-flavor-fastboot'
    flavor = conn.compute.find_flavor(name)
    if flavor is None:
        base = conn.compute.find_flavor(cloudlib.FLAVOR, ignore_missing=False)
        flavor = conn.compute.create_flavor(
            name=name, ram=base.ram, vcpus=base.vcpus, disk=base.disk)
        conn.compute.create_flavor_extra_specs(
            flavor, {'gpu:fast_boot': 'true'})
    return name


def test_plain_guest_boots_without_events_of_ours(clean):
    """Drop-in rule (issue 20): a guest that asks nothing of ours gets no
    database write of ours, so no gpu_ext_boot_* action events."""
    conn = clean
    server = cloudlib.boot(conn, 'ct-plain')
    assert _console_shows_marker(conn, server), 'guest init never ran'
    # Give the watcher the time it would have needed to report.
    time.sleep(10)
    _action, names = _create_action_events(conn, server, False)
    assert 'compute__do_build_and_run_instance' in names, names
    assert not [n for n in names if n.startswith('gpu_ext_boot_')], names


def test_gpu_ext_guest_boots_with_boot_phase_events(clean):
    conn = clean
    server = cloudlib.boot(conn, 'ct-fastboot',
                           flavor=_fast_boot_flavor(conn))
    assert _console_shows_marker(conn, server), 'guest init never ran'
    action, names = _create_action_events(conn, server, True)
    boot = [n for n in names if n.startswith('gpu_ext_boot_')]
    assert 'compute__do_build_and_run_instance' in names, names
    assert 'gpu_ext_boot_kernel' in boot, 'gpu_ext_boot_* events: %s' % (
        names)
    for event in action.events:
        if event['event'] in boot:
            assert event['result'] == 'Success', event


def _extra_specs_status(conn, flavor, specs):
    resp = conn.compute.post(
        '/flavors/%s/os-extra_specs' % flavor.id,
        json={'extra_specs': specs}, microversion='2.86',
        raise_exc=False)
    return resp.status_code, resp.text


def test_gpu_extra_specs_validated_as_400(cloud):
    conn = cloud
    flavor = conn.compute.find_flavor('ct-validate')
    if flavor is None:
        flavor = conn.compute.create_flavor(
            name='ct-validate', ram=128, vcpus=1, disk=1)
    try:
        status, text = _extra_specs_status(conn, flavor,
                                           {'gpu:nonsense': '1'})
        assert status == 400, (status, text)
        assert 'gpu:nonsense' in text, text
        status, text = _extra_specs_status(
            conn, flavor, {'gpu:render_node': 'sometimes'})
        assert status == 400, (status, text)
        assert 'gpu:render_node' in text, text
        status, text = _extra_specs_status(
            conn, flavor, {'gpu:render_node': 'none'})
        assert status == 200, (status, text)
    finally:
        conn.compute.delete_flavor(flavor)


def test_gpu_flavor_refused_with_reason_in_scheduler_log(clean):
    conn = clean
    mark = cloudlib.LogMark('nova-scheduler')
    server = cloudlib.boot(conn, 'ct-render', flavor='cloud.render',
                           wait=False)
    server = cloudlib.wait_status(conn, server, ('ERROR',))
    assert 'No valid host' in (server.fault or {}).get('message', ''), (
        server.fault)
    text = mark.text()
    host = socket.gethostname()
    assert 'GPUPlacementFilter: host %s refused: render node' % host in (
        text), text[-3000:]


def test_trait_and_summary_published(cloud):
    conn = cloud
    host = socket.gethostname()
    rps = cloudlib.placement_get(conn, '/resource_providers?name=' + host)
    assert len(rps['resource_providers']) == 1, rps
    rp = rps['resource_providers'][0]
    traits = cloudlib.placement_get(
        conn, '/resource_providers/%s/traits' % rp['uuid'])['traits']
    assert 'CUSTOM_GPU_EXT' in traits, traits
    stats = cloudlib.compute_stats()
    assert stats and all('gpu_ext' in s for s in stats), stats


def test_lifecycle(clean):
    conn = clean
    server = cloudlib.boot(conn, 'ct-life')
    name = cloudlib.instance_name(conn, server)

    conn.compute.stop_server(server)
    cloudlib.wait_status(conn, server, ('SHUTOFF',))
    assert name not in cloudlib.domains(running_only=True)
    conn.compute.start_server(server)
    cloudlib.wait_status(conn, server, ('ACTIVE',))
    assert name in cloudlib.domains(running_only=True)

    conn.compute.reboot_server(server, 'HARD')
    cloudlib.wait_status(conn, server, ('ACTIVE',))
    assert _console_shows_marker(conn, server)

    resized = conn.compute.find_flavor('cloud.tiny.resized')
    conn.compute.resize_server(server, resized.id)
    cloudlib.wait_status(conn, server, ('VERIFY_RESIZE',))
    conn.compute.confirm_server_resize(server)
    server = cloudlib.wait_status(conn, server, ('ACTIVE',))
    assert server.flavor.name == 'cloud.tiny.resized'

    conn.compute.shelve_server(server)
    cloudlib.wait_status(conn, server, ('SHELVED_OFFLOADED',))
    assert server.id not in cloudlib.domains().values()
    conn.compute.unshelve_server(server)
    cloudlib.wait_status(conn, server, ('ACTIVE',))

    image = conn.image.find_image(cloudlib.IMAGE)
    conn.compute.rebuild_server(server, image=image.id)
    cloudlib.wait_status(conn, server, ('ACTIVE',))
    assert _console_shows_marker(conn, server)
    cloudlib.check_invariants(conn)

    conn.compute.delete_server(server)
    cloudlib.wait_gone(conn, server.id)
    assert server.id not in cloudlib.domains().values()
