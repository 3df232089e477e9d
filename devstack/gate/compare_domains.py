#!/usr/bin/env python3
"""Compare the domain XML of two servers booted with the same device.

Gate tool (stdlib only: it runs on the devstack node). Usage::

    compare_domains.py UPSTREAM.xml GPU_EXT.xml

UPSTREAM.xml is the domain of a server whose flavor sets
``gpu:enabled=false`` (nova-gpu-ext's driver then defines upstream's XML),
GPU_EXT.xml one of the same device with nova-gpu-ext's changes. What
necessarily differs between two servers (UUIDs, names, times, paths, MACs,
mdev UUIDs) is masked; the rest is diffed and printed. Exit status: 0 when
the driver changed something, 1 when the two are the same (the driver
was not in the path or changed nothing), 2 on bad input.
"""

import difflib
import sys
import xml.etree.ElementTree as ET

NOVA_NS = '{http://openstack.org/xmlns/libvirt/nova/1.1}'
# Attributes whose values are per server.
VOLATILE_ATTRS = {'uuid', 'file', 'path', 'dev', 'address', 'port',
                  'tlsPort', 'websocket'}


def normalize(text):
    root = ET.fromstring(text)
    for tag in ('uuid', 'name', 'metadata', 'sysinfo', 'seclabel'):
        for el in root.findall(tag):
            if tag in ('uuid', 'name'):
                el.text = 'X'
            else:
                root.remove(el)
    for el in root.iter():
        for attr in list(el.attrib):
            if attr in VOLATILE_ATTRS and el.tag != 'model':
                el.attrib[attr] = 'X'
        if el.tag.startswith(NOVA_NS):
            el.text = 'X'
    ET.indent(root)
    return ET.tostring(root, encoding='unicode').splitlines()


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            upstream = normalize(f.read())
        with open(argv[2]) as f:
            ours = normalize(f.read())
    except (OSError, ET.ParseError) as exc:
        print('cannot read domain XML: %s' % exc, file=sys.stderr)
        return 2
    diff = list(difflib.unified_diff(upstream, ours, 'upstream', 'gpu_ext',
                                     lineterm=''))
    if not diff:
        print('nova-gpu-ext changed nothing in the domain XML')
        return 1
    print('nova-gpu-ext changed the domain XML:')
    print('\n'.join(diff))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
