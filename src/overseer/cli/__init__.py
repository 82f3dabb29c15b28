"""The ``overseer`` command."""
