"""What every route needs: the engine (its store) and whether tokens are required."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from playloop.dsl.flow import Flow
    from playloop.runtime import Engine
    from playloop.store.base import EventStore


FLOW_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class ApiContext:
    engine: Engine
    auth_required: bool
    #: validated flows by (path, version): a catalog version never changes, so parsing its
    #: YAML once per server is enough
    flows: dict[tuple[str, int], Flow] = field(default_factory=dict)

    @property
    def store(self) -> EventStore:
        return self.engine.store

    def flow(self, path: str, version: int) -> Flow:
        key = (path, version)
        found = self.flows.get(key)
        if found is None:
            if len(self.flows) >= FLOW_CACHE_SIZE:
                self.flows.clear()
            found = self.flows[key] = self.engine._flow_from_catalog(path, str(version))
        return found


def get_context(request: Request) -> ApiContext:
    ctx = request.app.state.playloop
    assert isinstance(ctx, ApiContext)
    return ctx


Context = Annotated[ApiContext, Depends(get_context)]
