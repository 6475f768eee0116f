"""`tollgate serve` with no config and no REDIS_URL: embedded Valkey, two simulated engines, keys once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import free_port, printed_keys, serve_demo, stop
from tests.support.prompts import EASY, HARD


def _processes_under(folder: Path) -> list[int]:
    """Live processes whose working directory is inside ``folder`` (the embedded Valkey's is)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(Path(os.readlink(entry / "cwd"))).startswith(str(folder)):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_embedded_stack_prints_keys_once_and_keeps_state(tmp_path: Path) -> None:
    port = free_port()
    process, lines = serve_demo(tmp_path, port)
    try:
        keys = printed_keys(lines + [process.stdout.readline(), process.stdout.readline()])
        assert set(keys) == {"admin key", "tenant key"}
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys["tenant key"], max_retries=0)
        assert {m.id for m in client.models.list()} == {"llama-3.1-8b", "llama-3.1-70b"}
        answer = client.chat.completions.create(model="llama-3.1-8b", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert answer.choices[0].message.content
        # The shipped default router sits behind model="auto", with the cascade on.
        easy = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi there!"}])
        hard = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content":
            "In a spin-1/2 system with Hamiltonian H = 3 sigma_z, what is the expectation of sigma_x after time t? Choose A-D."}])
        assert float(easy.headers["x-tollgate-router-score"]) < 0.5 < float(hard.headers["x-tollgate-router-score"])
        assert easy.headers["x-tollgate-escalated"] in ("true", "false") and hard.headers["x-tollgate-model"] == "llama-3.1-70b"
        # The simulated 8B model is unsure of hard prompts: the demo's cascade escalates them, not easy ones.
        escalated = {}
        for name, prompts in (("easy", EASY), ("hard", HARD)):
            heads = [client.chat.completions.with_raw_response.create(
                model="cascade", messages=[{"role": "user", "content": p}], max_tokens=24).headers for p in prompts]
            escalated[name] = sum(h["x-tollgate-escalated"] == "true" for h in heads) / len(prompts)
            assert {h.get("x-tollgate-escalation-reason") for h in heads} <= {None, "low_confidence"}
        assert escalated["hard"] - escalated["easy"] >= 0.4, escalated
    finally:
        stop(process)
    assert (tmp_path / ".tollgate" / "valkey" / "appendonlydir").is_dir()
    assert (tmp_path / ".tollgate" / "key_hash_secret").stat().st_mode & 0o077 == 0

    time.sleep(0.5)
    assert not _processes_under(tmp_path / ".tollgate"), "stopping the gateway stops its embedded Valkey"
    # A lost admin key: recovered on the host from the data directory, with the gateway stopped ...
    offline = _recover(tmp_path)
    assert not _processes_under(tmp_path / ".tollgate"), "recovery stops the Valkey it started"
    process, lines = serve_demo(tmp_path, port)
    try:
        time.sleep(0.3)
        assert not printed_keys(lines), "keys are printed on the first run only"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys["tenant key"], max_retries=0)
        stream = client.chat.completions.create(model="llama-3.1-70b", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=3, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream)
        base = f"http://127.0.0.1:{port}"
        assert _admin_status(base, offline) == 200 and _admin_status(base, keys["admin key"]) == 200
        # ... or running, revoking the others (one may have leaked)
        online = _recover(tmp_path, "--revoke-others")
        time.sleep(1.0)
        assert _admin_status(base, online) == 200
        assert _admin_status(base, offline) == _admin_status(base, keys["admin key"]) == 401
    finally:
        stop(process)


def _recover(folder: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TOLLGATE_ADMIN_KEY", "TOLLGATE_KEY_SECRET")}
    done = subprocess.run([sys.executable, "-m", "gateway", "admin", "recover", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return printed_keys(done.stdout.splitlines())["admin key"]


def _admin_status(base: str, key: str) -> int:
    return httpx.get(base + "/admin/tenants", headers={"authorization": f"Bearer {key}"}).status_code


def test_the_embedded_valkey_wants_a_password_keeps_its_files_private_and_comes_back(tmp_path: Path) -> None:
    import redis as sync_redis

    port = free_port()
    process, lines = serve_demo(tmp_path, port)
    try:
        keys = printed_keys(lines + [process.stdout.readline(), process.stdout.readline()])
        folder = tmp_path / ".tollgate" / "valkey"
        valkey_port = int(next(line.split()[1] for line in (folder / "valkey.conf").read_text().splitlines()
                               if line.startswith("port ")))
        anonymous = sync_redis.Redis(port=valkey_port)
        assert anonymous.ping()
        with pytest.raises(sync_redis.exceptions.NoPermissionError):
            anonymous.keys("*")  # everything but PING needs the password
        private = [folder / "users.acl", tmp_path / ".tollgate" / "valkey_password", *(folder / "appendonlydir").iterdir()]
        assert all(path.stat().st_mode & 0o077 == 0 for path in private), [oct(p.stat().st_mode) for p in private]
        assert keys["admin key"] not in (folder / "valkey.conf").read_text()
        pid = next(int(p) for p in _processes_under(folder))
        os.kill(pid, signal.SIGKILL)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys["tenant key"], max_retries=0)
        deadline, answered = time.monotonic() + 15, False
        while not answered and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                answered = bool(client.chat.completions.create(model="llama-3.1-8b", max_tokens=2,
                                                               messages=[{"role": "user", "content": "back?"}]).choices)
            except openai.APIStatusError:
                continue
        assert answered, "the gateway works again once the watcher restarted Valkey"
        assert "starting it again on the same port and data" in (tmp_path / "serve.err").read_text()
    finally:
        stop(process)


def test_several_workers_share_keys_and_sum_metrics(tmp_path: Path, sims: dict[str, str], valkey: str) -> None:
    from tests.support.processes import start_gateway
    from tests.support.stack import ADMIN_KEY, gateway_config, gateway_metrics, new_tenant_key

    config = tmp_path / "tollgate.yaml"
    config.write_text(gateway_config(sims, valkey))
    process, base = start_gateway(config, {"TEST_ADMIN_KEY": ADMIN_KEY}, tmp_path, "--workers", "2")
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key=new_tenant_key(base, "workers"), max_retries=0)
        for _ in range(10):
            assert client.chat.completions.create(model="cheap", messages=[{"role": "user", "content": "w"}], max_tokens=2).choices

        metrics = gateway_metrics(base)
        counted = [line for line in metrics.splitlines()
                   if line.startswith("tollgate_requests_total{") and 'tenant="workers"' in line and 'status="200"' in line]
        assert counted and float(counted[0].split()[-1]) == 10.0
    finally:
        stop(process)
    log = next(tmp_path.glob("gateway-*.log")).read_text()
    assert log.count("Started server process") == 2


def test_a_gateway_killed_outright_leaves_no_valkey_or_worker_behind(tmp_path: Path) -> None:
    """SIGKILL runs no exit code: the workers notice their supervisor is gone and stop gracefully,
    the guard stops Valkey (flushing its AOF); the port is free and the next start keeps the data."""
    port = free_port()
    process, lines = serve_demo(tmp_path, port, "--workers", "2")
    keys = printed_keys(lines + [process.stdout.readline(), process.stdout.readline()])
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=keys["tenant key"], max_retries=0, timeout=10)
    assert client.models.list().data
    folder = tmp_path / ".tollgate"
    assert _processes_under(folder), "the embedded Valkey runs in its data folder"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (_processes_under(folder) or _answers(port)):
        time.sleep(0.25)
    assert not _processes_under(folder), "the guard stops the embedded Valkey"
    assert not _answers(port), "the workers stop with their supervisor"
    assert "Removing the pid file" in (folder / "valkey" / "valkey.log").read_text()  # a graceful stop
    process, lines = serve_demo(tmp_path, port)
    try:
        assert not printed_keys(lines), "the same data: no new keys"
        assert client.models.list().data, "the tenant key made before the kill still works"
    finally:
        stop(process)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
