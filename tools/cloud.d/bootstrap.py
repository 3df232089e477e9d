"""Keystone catalog, service users, quotas, flavors and the guest image.

Run by ``tools/cloud up`` with the cloud's venv once keystone (then nova-api
and glance) answer; idempotent: what exists is kept. One process with
openstacksdk instead of ~30 ``openstack`` calls (each ~2 s to start).

Usage: bootstrap.py keystone|content CLOUD_DIR
"""

import os
import sys

import openstack

SERVICES = (
    # (user, service name, type, URL)
    ('nova', 'nova', 'compute', 'http://127.0.0.1:8774/v2.1'),
    ('placement', 'placement', 'placement', 'http://127.0.0.1:8778'),
    ('glance', 'glance', 'image', 'http://127.0.0.1:9292'),
    ('neutron', 'neutron', 'network', 'http://127.0.0.1:9696'),
)
REGION = 'RegionOne'
#: name, RAM MiB, vCPUs, disk GiB, extra specs (tiny: TCG guests)
FLAVORS = (
    ('cloud.tiny', 128, 1, 1, {}),
    ('cloud.tiny.resized', 128, 1, 2, {}),
    ('cloud.render', 128, 1, 1, {'gpu:render_node': 'numa-local'}),
)
IMAGE = 'cloud-guest'


def keystone(conn, password):
    ident = conn.identity
    service_project = (ident.find_project('service', domain_id='default') or
                       ident.create_project(name='service',
                                            domain_id='default'))
    roles = {r.name: r for r in ident.roles()}
    for name in ('admin', 'service', 'member', 'reader'):
        if name not in roles:
            roles[name] = ident.create_role(name=name)
    for user, service, stype, url in SERVICES:
        u = (ident.find_user(user, domain_id='default') or
             ident.create_user(name=user, password=password,
                               domain_id='default',
                               default_project_id=service_project.id))
        for role in ('admin', 'service'):
            ident.assign_project_role_to_user(service_project, u,
                                              roles[role])
        svc = ident.find_service(service)
        if svc is None:
            svc = ident.create_service(name=service, type=stype)
        have = {e.interface for e in ident.endpoints(service_id=svc.id)}
        for interface in ('public', 'internal', 'admin'):
            if interface not in have:
                ident.create_endpoint(service_id=svc.id, interface=interface,
                                      url=url, region_id=REGION)


def content(conn, cloud_dir):
    admin_project = conn.current_project_id
    # 20 concurrent guests (load test) and more: no quota in the way.
    conn.compute.update_quota_set(
        admin_project, instances=-1, cores=-1, ram=-1,
        server_groups=-1, server_group_members=-1)
    for name, ram, vcpus, disk, specs in FLAVORS:
        flavor = conn.compute.find_flavor(name)
        if flavor is None:
            flavor = conn.compute.create_flavor(
                name=name, ram=ram, vcpus=vcpus, disk=disk)
            if specs:
                conn.compute.create_flavor_extra_specs(flavor, specs)
    if conn.image.find_image(IMAGE) is None:
        conn.image.create_image(
            name=IMAGE, filename=os.path.join(cloud_dir, 'images',
                                              'cloud-guest.img'),
            disk_format='raw', container_format='bare', visibility='public',
            allow_duplicates=False, wait=True)


def main(argv):
    what, cloud_dir = argv
    conn = openstack.connect(cloud='nova-gpu-ext-cloud')
    if what == 'keystone':
        with open(os.path.join(cloud_dir, 'etc', 'password')) as f:
            keystone(conn, f.read().strip())
    else:
        content(conn, cloud_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
