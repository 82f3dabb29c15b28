"""The supervisor runtime: agent processes, JSON-RPC, adapters, health sweeps, restart policy.

Contract: nothing in this package imports FastAPI. The runtime calls services; only ``overseer.app``
wires the web layer to the runtime.
"""
