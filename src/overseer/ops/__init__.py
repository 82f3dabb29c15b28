"""Live operations: approvals, questions, signals, snapshot, feed, dispatch (live-operations-view-epic.md)."""
