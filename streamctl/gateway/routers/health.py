"""Health of each store, and the operational views the dashboard shows (shards, replication, HA members)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from streamctl.gateway import ops
from streamctl.gateway.deps import StoresDep, errors
from streamctl.gateway.schemas import HaMembers, Health, Rebalance, Replication, Shards

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, operation_id="getHealth", responses={503: {"model": Health,
                                                               "description": "An enabled store is down"}})
async def health(stores: StoresDep) -> JSONResponse:
    """Each store's state; 200 when every enabled store answers, 503 (same body) when one does not,
    so a load balancer can act on the status alone."""
    result = await ops.health(stores)
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if result.status == "ok" else 503)


@router.get("/api/v1/ops/shards", response_model=Shards, operation_id="getShards", responses=errors(503))
async def shards(stores: StoresDep) -> Shards:
    """Shard placements per Citus node (empty, citus false, when Citus is off)."""
    return await ops.shards(stores)


@router.get("/api/v1/ops/rebalance", response_model=Rebalance, responses=errors(503), operation_id="getRebalance")
async def rebalance(stores: StoresDep) -> Rebalance:
    """The latest Citus rebalance job: state, shard moves done / total, moves running (citus false when
    Citus is off; job_id null when no rebalance ever ran)."""
    return await ops.rebalance(stores)


@router.get("/api/v1/ops/replication", response_model=Replication, operation_id="getReplication")
async def replication(stores: StoresDep) -> Replication:
    """Each analytics replica's subscription state and lag (bytes behind, seconds of replay lag)."""
    return await ops.replication(stores)


@router.get("/api/v1/ops/ha", response_model=HaMembers, operation_id="getHaMembers")
async def ha_members(stores: StoresDep) -> HaMembers:
    """Under HA, each group's members as Patroni sees them: role (leader, sync_standby, replica), state,
    timeline and lag in bytes (enabled false and no groups without an ha section)."""
    return await ops.ha(stores)
