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
