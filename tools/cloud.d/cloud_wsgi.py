"""The WSGI application named by $CLOUD_WSGI_APP, for gunicorn (tools/cloud).

Keystone, nova-api and neutron parse sys.argv when their application is
built, and gunicorn's own arguments are there ("unrecognized arguments"):
clear them, then import "module:callable".
"""

import importlib
import os
import sys

sys.argv = sys.argv[:1]

_module, _name = os.environ['CLOUD_WSGI_APP'].split(':')
application = getattr(importlib.import_module(_module), _name)

if os.environ.get('CLOUD_WSGI_CONFIGURE_MAPPERS'):
    # neutron-server configures SQLAlchemy's mappers while it starts; its
    # WSGI application alone does not, and get_ports then reads the
    # backref Port.port_forwardings before any mapper was configured
    # (AttributeError, HTTP 500 for every port list nova-api makes).
    from sqlalchemy import orm

    orm.configure_mappers()
