"""Staff users."""

from __future__ import annotations

from sqlalchemy import select

from guanxi.core.base.errors import ConflictError, ValidationError
from guanxi.core.base.ids import new_id
from guanxi.core.domain.access import ROLES
from guanxi.core.domain.models import User, utcnow
from guanxi.core.runtime import Tx
from guanxi.core.services.audit import audit
from guanxi.core.services.customers import normalize_email


async def create_user(tx: Tx, *, email: str, name: str, role: str = "sales", team: str | None = None) -> User:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field="role")
    email = normalize_email(email)
    if (await tx.session.execute(select(User.id).where(User.email == email))).first() is not None:
        raise ConflictError(f"a user with email {email} already exists")
    name = " ".join(name.split())
    if not name:
        raise ValidationError("name must not be empty", field="name")
    user = User(id=new_id(), email=email, name=name, role=role, team=team, active=True, created_at=utcnow())
    tx.session.add(user)
    await tx.session.flush()
    audit(tx, "user.create", "user", user.id, {"role": role, "team": team})
    return user
