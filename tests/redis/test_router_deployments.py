"""Router rollout state in a real Valkey: deploy, shadow, promote, roll back, discard (issue #16).
The workers' side (every replica within a second) is tested in tests/e2e/test_scale_out.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.stages.router_deployments import (
    HISTORY_KEPT,
    SLOTS_KEY,
    DeploymentError,
    assemble,
    change,
    read_artifacts,
    read_slots,
    store_artifact,
    version_of,
)
from gateway.store.redis import redis_client
from router.model import RouterFileError, parse
from router.train import fit
from tests.support.router_data import synthetic_examples


def test_serve_shadow_promote_rollback_and_discard_keep_a_history(valkey: str) -> None:
    document = fit(synthetic_examples(200), regularization=1.0).document()

    async def run() -> None:
        redis = redis_client(valkey)
        await redis.delete(SLOTS_KEY)
        version = await store_artifact(redis, document)
        assert version == version_of(json.loads(json.dumps(document)))  # the same file, the same version
        assert (await read_artifacts(redis, [version, "missing"])).keys() == {version}
        with pytest.raises(DeploymentError, match="nothing to roll back"):
            await change(redis, "rollback", None)
        with pytest.raises(DeploymentError, match="no candidate"):
            await change(redis, "promote", None)
        await change(redis, "shadow", None, version, 1000.0)
        slots = await read_slots(redis)
        assert slots["global:shadow"] == version and "global" not in slots and slots["global:shadow_since"] == "1000.0"
        await change(redis, "promote", None)
        slots = await read_slots(redis)
        assert slots["global"] == version and "global:shadow" not in slots
        assert json.loads(slots["global:history"]) == [""]  # "": the configured router served before
        await change(redis, "serve", "acme", version)  # a tenant's own router, with its own history
        await change(redis, "rollback", None)
        slots = await read_slots(redis)
        assert "global" not in slots and slots["tenant:acme"] == version
        await change(redis, "rollback", "acme")
        assert "tenant:acme" not in await read_slots(redis)
        await change(redis, "shadow", "acme", version, 5.0)
        await change(redis, "discard", "acme")
        with pytest.raises(DeploymentError):
            await change(redis, "discard", "acme")
        for _ in range(HISTORY_KEPT + 5):  # serving the same version again changes nothing; others pile up
            await change(redis, "serve", None, version)
            await change(redis, "serve", None, "other")
        assert len(json.loads((await read_slots(redis))["global:history"])) == HISTORY_KEPT
        await redis.delete(SLOTS_KEY)
        await redis.aclose()

    asyncio.run(run())


def test_a_malformed_artifact_is_refused_before_it_is_stored(valkey: str) -> None:
    async def run() -> None:
        redis = redis_client(valkey)
        with pytest.raises(RouterFileError):
            await store_artifact(redis, {"format": "tollgate-router/4", "features": {}})
        await redis.aclose()

    asyncio.run(run())


def test_assemble_falls_back_from_tenant_to_global_to_configured() -> None:
    from gateway.stages.router_deployments import Deployed

    model = parse(fit(synthetic_examples(100), regularization=1.0).document())
    configured = Deployed("conf", model)
    models = {"v1": model, "v2": model}
    slots = {"global:shadow": "v2", "tenant:acme": "v1", "tenant:beta:shadow": "v1", "tenant:gone": "unloaded",
             "global:history": "[]", "global:shadow_since": "1"}
    deployed = assemble(slots, models, configured)
    assert deployed.serving == configured  # no global slot: the config's artifact
    assert deployed.serving_for("acme").version == "v1" and deployed.serving_for("beta") == configured
    assert deployed.serving_for("gone") == configured  # a version that could not be loaded is left out
    assert deployed.shadow_for("acme").version == "v2" and deployed.shadow_for("beta").version == "v1"


@pytest.mark.parametrize("change_it", [
    lambda d: d["features"].update(buckets=1 << 40),  # would allocate terabytes
    lambda d: d["features"].update(ngram_max="2"),
    lambda d: d.update(metadata=[1, 2]),
    lambda d: d.update(weights=[[-1, 0.5]]),
    lambda d: d["features"].update(embedding={"table": "other-table", "scale": 1.0}),
])
def test_hostile_or_hand_made_artifacts_are_refused(change_it: object) -> None:
    document = fit(synthetic_examples(100), regularization=1.0, embedding_scale=0.0).document()
    change_it(document)  # type: ignore[operator]
    with pytest.raises(RouterFileError):
        parse(json.loads(json.dumps(document)))
