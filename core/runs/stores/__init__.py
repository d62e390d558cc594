"""Run-store back ends: ``base`` (the interface and shared logic), ``sqlite`` (the default) and
``postgres`` (many hosts). Open one with ``core.runs.store.open_store``."""
