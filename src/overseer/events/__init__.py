"""The append-only event log, the in-process bus, and (later) the SSE stream."""
