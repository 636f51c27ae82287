"""What a plugin needs to declare its own tables: the declarative base, the tenant and ownership
mixins, the personal-data marker, the timezone-aware timestamp type and id helpers.

A plugin's table::

    from sqlalchemy.orm import Mapped, mapped_column
    from guanxi.models import PERSONAL, Base, CustomerOwned, TenantScoped, UTCDateTime

    class LoyaltyAccount(CustomerOwned, TenantScoped, Base):
        __tablename__ = "loyalty_accounts"          # prefixed with the plugin's name
        id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
        customer_id: Mapped[uuid.UUID]
        nickname: Mapped[str] = mapped_column(info=PERSONAL)
        joined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

``TenantScoped`` puts ``tenant_id`` first in the primary key; the tenant filter is then added to
every query by core (never by hand). ``CustomerOwned`` applies record ownership (a salesperson
sees rows of their own customers only). ``Mapped[dt.datetime]`` columns map to ``UTCDateTime``
by default: aware datetimes in UTC on SQLite and PostgreSQL alike. ``Customer`` is core's
customer table, for foreign keys and for the conditions of ``customers`` filters and orderings.
"""

from guanxi.core.base.ids import new_id
from guanxi.core.domain.models import PERSONAL, Base, Customer, CustomerOwned, TenantScoped, UTCDateTime, utcnow

__all__ = ["PERSONAL", "Base", "Customer", "CustomerOwned", "TenantScoped", "UTCDateTime", "new_id", "utcnow"]
