"""jobs, job dependencies, resource quotas and allocations (issue 5; manager-ai-mvp-spec.md §1.2, §2.3)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import overseer.db.base

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('resource_quotas',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=True),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('max_workers', sa.Integer(), nullable=False),
    sa.Column('updated_at', overseer.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_resource_quotas_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_quotas')),
    sa.UniqueConstraint('workspace_id', 'depth', name='uq_resource_quotas_workspace_id_depth')
    )
    with op.batch_alter_table('resource_quotas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_quotas_workspace_id'), ['workspace_id'], unique=False)
        batch_op.create_index('uq_resource_quotas_global_depth', ['depth'], unique=True, sqlite_where=sa.text('workspace_id IS NULL'), postgresql_where=sa.text('workspace_id IS NULL'))

    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('parent_job_id', sa.Uuid(), nullable=True),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('agent_kind', sa.String(length=20), nullable=False),
    sa.Column('access_mode', sa.String(length=20), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('worker_id', sa.Uuid(), nullable=True),
    sa.Column('pinned_worker', sa.Boolean(), nullable=False),
    sa.Column('thread_id', sa.String(length=128), nullable=True),
    sa.Column('turn_id', sa.String(length=128), nullable=True),
    sa.Column('turn_ended_at', overseer.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('waiting', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.Column('started_at', overseer.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', overseer.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', overseer.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', overseer.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_job_id'], ['jobs.id'], name=op.f('fk_jobs_parent_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['worker_id'], ['workers.id'], name=op.f('fk_jobs_worker_id_workers'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_jobs_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_parent_job_id'), ['parent_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_status'), ['status'], unique=False)
        batch_op.create_index('ix_jobs_status_priority', ['status', 'priority', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('job_dependencies',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('depends_on_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['depends_on_id'], ['jobs.id'], name=op.f('fk_job_dependencies_depends_on_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_dependencies_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_job_dependencies_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'depends_on_id', name=op.f('pk_job_dependencies'))
    )
    with op.batch_alter_table('job_dependencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_dependencies_depends_on_id'), ['depends_on_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_dependencies_workspace_id'), ['workspace_id'], unique=False)

    op.create_table('resource_allocations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('worker_count', sa.Integer(), nullable=False),
    sa.Column('allocated_at', overseer.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', overseer.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('release_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_resource_allocations_job_id_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_resource_allocations_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_allocations'))
    )
    with op.batch_alter_table('resource_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_allocations_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_resource_allocations_open', ['workspace_id', 'depth', 'released_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_resource_allocations_workspace_id'), ['workspace_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('resource_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resource_allocations_workspace_id'))
        batch_op.drop_index('ix_resource_allocations_open')
        batch_op.drop_index(batch_op.f('ix_resource_allocations_job_id'))

    op.drop_table('resource_allocations')
    with op.batch_alter_table('job_dependencies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_dependencies_workspace_id'))
        batch_op.drop_index(batch_op.f('ix_job_dependencies_depends_on_id'))

    op.drop_table('job_dependencies')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_workspace_id'))
        batch_op.drop_index('ix_jobs_status_priority')
        batch_op.drop_index(batch_op.f('ix_jobs_status'))
        batch_op.drop_index(batch_op.f('ix_jobs_parent_job_id'))

    op.drop_table('jobs')
    with op.batch_alter_table('resource_quotas', schema=None) as batch_op:
        batch_op.drop_index('uq_resource_quotas_global_depth', sqlite_where=sa.text('workspace_id IS NULL'), postgresql_where=sa.text('workspace_id IS NULL'))
        batch_op.drop_index(batch_op.f('ix_resource_quotas_workspace_id'))

    op.drop_table('resource_quotas')
