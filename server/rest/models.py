"""/v1/models: what is loaded (management routes come with the store's REST issue)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from mlipserve.server.models.base import ModelInfo

router = APIRouter(prefix="/v1/models", tags=["models"])


def describe(info: ModelInfo, is_default: bool) -> dict:
    """A model version as JSON."""
    return {"name": info.name, "version": info.version, "kind": info.kind,
            "elements": sorted(info.elements), "cutoff": info.cutoff,
            "ensemble_size": info.ensemble_size, "conditions": list(info.conditions),
            "properties": list(info.properties), "dtype": info.dtype, "device": info.device,
            "is_default": is_default, "loaded": True, "metrics": info.extra.get("metrics", {})}


@router.get("")
async def list_models(request: Request) -> list[dict]:
    """Every loaded model version."""
    return [describe(l.model.info, d) for l, d in request.app.state.registry.entries()]


@router.get("/{name}")
async def show_model(name: str, request: Request) -> dict:
    """One model: its versions and which is the default."""
    versions = [describe(l.model.info, d) for l, d in request.app.state.registry.entries()
                if l.model.info.name == name]
    if not versions:
        raise HTTPException(404, f"unknown model {name!r}")
    return {"name": name, "versions": versions}
