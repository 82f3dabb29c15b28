"""Import every ORM model so ``Base.metadata`` is complete (Alembic, tests)."""

from overseer.db.base import Base
from overseer.db.idempotency import IdempotencyKey
from overseer.events.models import Event
from overseer.jobs.models import Job, JobDependency, ResourceAllocation, ResourceQuota
from overseer.ops.chat_models import ChatMessage
from overseer.ops.dispatch_models import DispatchRecord
from overseer.ops.models import OpenQuestion, PendingApproval
from overseer.ops.projections import OpsCheckpoint, OpsThread, OpsWorkspace, Signal
from overseer.supervisors.models import Supervisor, SupervisorTeam, SupervisorTeamMember
from overseer.workers.models import StateTransition, Worker
from overseer.workspaces.models import Workspace

__all__ = [
           "Base",
           "ChatMessage",
           "DispatchRecord",
           "Event",
           "IdempotencyKey",
           "Job",
           "JobDependency",
           "OpenQuestion",
           "OpsCheckpoint",
           "OpsThread",
           "OpsWorkspace",
           "PendingApproval",
           "ResourceAllocation",
           "ResourceQuota",
           "Signal",
           "StateTransition",
           "Supervisor",
           "SupervisorTeam",
           "SupervisorTeamMember",
           "Worker",
           "Workspace",
]
