"""Normalise domain XML so two boots of the same flavor compare equal.

Only what necessarily differs between two servers is masked: their UUIDs,
names, creation times, the paths and serials derived from them, and the
UUIDs of the mediated devices created for them.
"""

import re

from lxml import etree


def normalize(xml, server_ids=()):
    root = etree.fromstring(xml.encode())
    for path in ('./uuid', './name'):
        for el in root.findall(path):
            el.text = 'X'
    ns = {'nova': 'http://openstack.org/xmlns/libvirt/nova/1.1'}
    for tag in ('nova:creationTime', 'nova:name', 'nova:owner/nova:user',
                'nova:owner/nova:project', 'nova:ports/nova:port'):
        for el in root.iterfind('.//' + tag, ns):
            el.text = 'X'
            for attr in list(el.attrib):
                el.attrib[attr] = 'X'
    for el in root.iterfind('.//sysinfo/system/entry'):
        if el.get('name') in ('serial', 'uuid'):
            el.text = 'X'
    for el in root.iterfind(".//hostdev[@type='mdev']/source/address"):
        if el.get('uuid'):
            el.set('uuid', 'X')
    text = etree.tostring(root, pretty_print=True).decode()
    for sid in server_ids:
        text = text.replace(sid, 'SERVER')
    return re.sub(r'instance-[0-9a-f]{8}', 'instance-X', text)
