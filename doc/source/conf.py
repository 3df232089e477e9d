"""Sphinx configuration of the nova-gpu-ext documentation.

Every reference (options, sample configuration, gpu: extra specs, domain
XML tweaks, command line) is generated from the installed package at build
time: ``tox -e docs`` installs it first.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_exts'))

project = 'nova-gpu-ext'
copyright = 'nova-gpu-ext developers'
author = 'nova-gpu-ext developers'

extensions = [
    'oslo_config.sphinxext',
    'gpu_ext_docs',
]

master_doc = 'index'
exclude_patterns = []
pygments_style = 'sphinx'
# Plain Sphinx with a built-in theme: no theme package from the network.
html_theme = 'alabaster'
html_theme_options = {'description': 'GPU-aware OpenStack Nova extension'}
html_static_path = []
# Nova's own docs are the reference for everything upstream.
nitpicky = False
# Keep quotes and dashes as typed: help texts and commands are copied.
smartquotes = False
