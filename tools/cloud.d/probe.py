"""Is the cloud's nova-compute ready? (tools/cloud, exit 0 when it is)

Ready: the compute service of this host is enabled and up, its hypervisor
is listed, and its resource provider is in placement; with SINCE (a UNIX
time), the service must also have reported after SINCE (a restarted
nova-compute, not the old process's last heartbeat), and the time of that
report is printed.

Usage: probe.py compute CLOUD_DIR [SINCE]
"""

import datetime
import socket
import sys

import openstack


def compute_ready(conn, since=None):
    host = socket.gethostname()
    services = [s for s in conn.compute.services(binary='nova-compute')
                if s.host == host]
    if not services or services[0].state != 'up' or \
            services[0].status != 'enabled':
        return False
    if since is not None:
        updated = datetime.datetime.fromisoformat(
            services[0].updated_at.replace('Z', '')).replace(
                tzinfo=datetime.timezone.utc)
        if updated.timestamp() < since:
            return False
    if not list(conn.compute.hypervisors()):
        return False
    if not any(rp.name == host
               for rp in conn.placement.resource_providers()):
        return False
    if since is None:
        return True
    return '%.3f' % updated.timestamp()


def main(argv):
    conn = openstack.connect(cloud='nova-gpu-ext-cloud')
    since = float(argv[2]) if len(argv) > 2 else None
    updated = compute_ready(conn, since)
    if updated is False:
        return 1
    # The time of the report seen (tools/cloud waits for a later one).
    print(updated or '')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
