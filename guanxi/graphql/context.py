"""The per-request GraphQL context: runtime, caller, one lazily opened session, DataLoaders."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

from strawberry.litestar import BaseContext

from guanxi.core.base.context import RequestContext
from guanxi.core.runtime import Runtime, Tx
from guanxi.core.storage.tenancy import TenantSession


class RequestEndedError(RuntimeError):
    """A resolver still running after its operation was answered asked for the session."""


class GraphQLContext(BaseContext, kw_only=True):
    """Available to resolvers as ``info.context``."""

    runtime: Any
    request_context: Any
    #: a WebSocket's connection_init payload (where a browser sends its credentials)
    connection_params: Any = None
    _session: Any = None
    #: the operation is over (:meth:`end`): no session may be opened any more
    _ended: bool = False
    _loaders: Any = None
    state: dict[str, Any] = {}  # noqa: RUF012 - msgspec copies mutable defaults per instance

    @property
    def rt(self) -> Runtime:
        return self.runtime

    @property
    def ctx(self) -> RequestContext:
        return self.request_context

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.ctx.tenant_id

    @property
    def session(self) -> TenantSession:
        """The request's read session (opened on first use, closed after the operation)."""
        if self._session is None:
            if self._ended:
                raise RequestEndedError("this GraphQL operation is over: its database session is closed")
            self._session = self.rt.session(self.tenant_id, self.ctx.owners)
        return self._session

    @property
    def loaders(self) -> Any:
        if self._loaders is None:
            from guanxi.graphql.loaders import Loaders

            self._loaders = Loaders(self)
        return self._loaders

    def reset_reads(self) -> None:
        """Forget cached reads (after a mutation changed data)."""
        self._loaders = None

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """A mutation's unit of work, as the caller (tenant, actor, ownership limits); cached
        reads are forgotten first, since the mutation changes what they saw."""
        self.reset_reads()
        return self.rt.transaction(self.ctx)

    def start(self) -> None:
        """An operation starts (a WebSocket's context serves one after another)."""
        self._ended = False

    async def end(self) -> None:
        """The operation is over: close the session, and open none for a resolver still running.

        When a resolver raises, graphql-core nulls its parent and answers; sibling resolvers it
        started may still be running and read the session after that. Without this, such a
        straggler opened a new session nobody closed, and its connection was left to the garbage
        collector: a stream of requests with a bad argument could exhaust the pool."""
        self._ended = True
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
