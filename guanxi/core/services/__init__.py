"""Core services: the only code that changes core tables. Each takes a :class:`~guanxi.core.runtime.Tx`."""
