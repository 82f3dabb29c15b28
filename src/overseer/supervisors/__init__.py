"""Supervisors, their teams and members, health (TKT-001, TSK-001, TSK-003)."""
