"""Import every ORM model so ``Base.metadata`` is complete (Alembic, tests)."""

from overseer.db.base import Base
from overseer.db.idempotency import IdempotencyKey
from overseer.events.models import Event
from overseer.ops.models import OpenQuestion, PendingApproval
from overseer.supervisors.models import Supervisor, SupervisorTeam, SupervisorTeamMember
from overseer.workers.models import StateTransition, Worker
from overseer.workspaces.models import Workspace

__all__ = ["Base", "Event", "IdempotencyKey", "OpenQuestion", "PendingApproval", "StateTransition", "Supervisor", "SupervisorTeam",
           "SupervisorTeamMember", "Worker", "Workspace"]
