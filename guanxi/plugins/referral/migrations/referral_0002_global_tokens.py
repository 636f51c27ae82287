"""tokens unique across tenants: /r/{token} finds its tenant from the token alone

Revision ID: referral_0002
Revises: referral_0001
"""

from __future__ import annotations

from alembic import op

revision = "referral_0002"
down_revision = "referral_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referral_tokens") as batch:
        batch.drop_constraint("uq_referral_tokens_tenant_id_token", type_="unique")
        batch.create_unique_constraint("uq_referral_tokens_token", ["token"])


def downgrade() -> None:
    with op.batch_alter_table("referral_tokens") as batch:
        batch.drop_constraint("uq_referral_tokens_token", type_="unique")
        batch.create_unique_constraint("uq_referral_tokens_tenant_id_token", ["tenant_id", "token"])
