"""Scopes (manager-ai-mvp-spec.md §2.2, issue 2 item 4). ``admin`` implies every other scope."""

from enum import StrEnum


class Scope(StrEnum):
    supervisor_read = "supervisor:read"
    supervisor_write = "supervisor:write"
    jobs_read = "jobs:read"
    jobs_write = "jobs:write"
    admin = "admin"
