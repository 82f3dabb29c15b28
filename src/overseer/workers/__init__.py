"""Workers: supervised agent instances, their state machine and metrics (manager-ai-mvp-spec.md §1.1)."""
