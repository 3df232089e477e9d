"""Sphinx configuration of the nova-gpu-ext release notes (reno)."""

project = 'nova-gpu-ext Release Notes'
copyright = 'nova-gpu-ext developers'
extensions = ['reno.sphinxext']
master_doc = 'index'
html_theme = 'alabaster'
html_static_path = []
