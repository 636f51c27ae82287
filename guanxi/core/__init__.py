"""Guanxi core: the domain model, tenant scoping, configuration, plugin manager and services.

Core imports no API, CLI or plugin code (checked by import-linter, see pyproject.toml).
"""
