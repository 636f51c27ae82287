"""Builtin plugins, one subpackage each (enabled by name through the ``guanxi`` entry-point group).

Plugins never import each other: they talk through core's hooks and services only.
"""
