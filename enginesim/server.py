"""The simulated engine's HTTP server: vLLM's OpenAI API and Prometheus metrics, plus fault switches.

Extra endpoints for tests and demos (not part of vLLM):
  ``GET/POST /sim/faults``   read or change fault injection at run time
  ``GET /sim/last_request``  the last completion request body, to check what a gateway forwarded
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

from .engine import Engine, LinearTiming, Sequence, TimingModel
from .responses import Shaper, error, usage
from .textgen import (
    Plan,
    TokenOut,
    flatten_chat,
    plan_answer,
    tokenize,
    tokens_for_text,
    tool_call_arguments,
)


@dataclass
class Faults:
    error_rate: float = 0.0               # share of requests answered with HTTP 500
    extra_latency_ms: float = 0.0         # added before the first byte
    drop_stream_after_tokens: int = 0     # cut streams (and bodies) after this many tokens; 0 = never
    refuse_connections_s: float = 0.0     # stop listening for this long (set at run time)
    omit_usage: bool = False              # behave like engines that report no usage (llama-cpp-python streams)

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool) != isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"fault {name!r} takes a {type(current).__name__}")
            setattr(self, name, type(current)(value))


@dataclass
class SimSettings:
    model: str = "sim-model"
    host: str = "127.0.0.1"
    port: int = 8001
    max_num_seqs: int = 64
    kv_capacity_tokens: int = 200_000
    time_scale: float = 1.0
    confidence: float = 0.9
    timing: TimingModel = LinearTiming()


class Simulator:
    def __init__(self, settings: SimSettings, faults: Faults | None = None, seed: int = 0) -> None:
        self.settings = settings
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.engine = Engine(
            settings.timing,
            max_num_seqs=settings.max_num_seqs,
            kv_capacity_tokens=settings.kv_capacity_tokens,
            time_scale=settings.time_scale,
        )
        self.last_request: dict[str, Any] | None = None
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/moderations", self.moderations)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/sim/faults", self.get_faults)
        app.router.add_post("/sim/faults", self.set_faults)
        app.router.add_get("/sim/last_request", self.get_last_request)
        return app

    async def start(self) -> None:
        self.engine.start()
        self.runner = web.AppRunner(self.app(), handler_cancellation=True, access_log=None)
        await self.runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self.runner is not None
        self.site = web.TCPSite(self.runner, self.settings.host, self.settings.port, reuse_address=True)
        await self.site.start()

    async def stop(self) -> None:
        await self.engine.stop()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- OpenAI API -------------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._complete(request, chat=False)

    async def models(self, _: web.Request) -> web.Response:
        card = {"id": self.settings.model, "object": "model", "created": 0, "owned_by": "enginesim"}
        return web.json_response({"object": "list", "data": [card]})

    async def moderations(self, request: web.Request) -> web.Response:
        """A stand-in for a Llama Guard style classifier in OpenAI's shape: flags "[unsafe]" texts."""
        try:
            body = await request.json()
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        except (ValueError, KeyError, TypeError):
            return web.json_response(error("invalid request: needs \"input\"", 400), status=400)
        if self.faults.extra_latency_ms:
            await asyncio.sleep(self.faults.extra_latency_ms / 1000)
        results = [{"flagged": "[unsafe]" in str(t), "categories": {"violence": "[unsafe]" in str(t)},
                    "category_scores": {"violence": 0.99 if "[unsafe]" in str(t) else 0.01}} for t in texts]
        return web.json_response({"id": f"modr-{uuid.uuid4().hex[:12]}", "model": self.settings.model, "results": results})

    async def health(self, _: web.Request) -> web.Response:
        return web.Response(text="")

    async def _complete(self, request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response(error("invalid JSON body", 400), status=400)
        if not isinstance(body, dict):
            return web.json_response(error("body must be a JSON object", 400), status=400)
        self.last_request = body
        if body.get("model") != self.settings.model:
            message = f"The model `{body.get('model')}` does not exist."
            return web.json_response(error(message, 404, "NotFoundError"), status=404)
        if int(body.get("n") or 1) != 1:
            return web.json_response(error("n > 1 is not supported by this engine", 400), status=400)
        if self.faults.extra_latency_ms:
            await asyncio.sleep(self.faults.extra_latency_ms / 1000)
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            return web.json_response(error("injected fault", 500, "InternalServerError"), status=500)
        try:
            prompt_text, answer, tool_calls = self._answer(body, chat)
        except (KeyError, TypeError, ValueError) as err:
            return web.json_response(error(f"invalid request: {err}", 400), status=400)
        sequence = self.engine.submit(tokenize(prompt_text), answer)
        shaper = Shaper(
            uuid.uuid4().hex,
            self.settings.model,
            chat,
            logprobs=bool(body.get("logprobs")),
            top_logprobs=int(body.get("top_logprobs") or 0) if chat else int(body.get("logprobs") or 0),
        )
        try:
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(request, sequence, shaper, include_usage, tool_calls)
            return await self._whole(sequence, shaper, tool_calls)
        finally:
            if not sequence.done:
                self.engine.abort(sequence)

    def _answer(self, body: dict[str, Any], chat: bool) -> tuple[str, Plan, list | None]:
        """What to generate: the prompt text, the planned tokens, and tool calls if any."""
        if chat:
            prompt_text = flatten_chat(body["messages"])
        else:
            prompt = body["prompt"]
            prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        plan = plan_answer(prompt_text, body.get("seed"), max_tokens, stop, self.settings.confidence)
        tool = _forced_tool(body) if chat else None
        if tool is not None:
            arguments = tool_call_arguments(tool)
            call = {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                    "function": {"name": tool["function"]["name"], "arguments": arguments}}
            return prompt_text, Plan(tuple(tokens_for_text(arguments)), "tool_calls"), [call]
        if chat and (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            text = json.dumps({"answer": "".join(t.text for t in plan.tokens)})
            return prompt_text, Plan(tuple(tokens_for_text(text)), "stop"), None
        return prompt_text, plan, None

    async def _whole(self, sequence: Sequence, shaper: Shaper, tool_calls: list | None) -> web.StreamResponse:
        tokens: list[TokenOut] = []
        while (token := await sequence.out.get()) is not None:
            tokens.append(token)
            if self.faults.drop_stream_after_tokens and len(tokens) >= self.faults.drop_stream_after_tokens:
                raise ConnectionResetError("injected fault: connection dropped")
        use = usage(len(sequence.prompt), len(tokens), sequence.cached_tokens)
        answer = shaper.whole(tokens, sequence.plan.finish_reason, use, tool_calls)
        if self.faults.omit_usage:
            del answer["usage"]
        return web.json_response(answer)

    async def _stream(self, request: web.Request, sequence: Sequence, shaper: Shaper,
                      include_usage: bool, tool_calls: list | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)

        async def send(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            await response.write(f"data: {data}\n\n".encode())

        try:
            return await self._send_stream(request, response, send, sequence, shaper, include_usage, tool_calls)
        except ConnectionResetError:  # the client (a gateway cancelling a cascade, say) went away
            return response

    async def _send_stream(self, request: web.Request, response: web.StreamResponse, send: Any, sequence: Sequence,
                           shaper: Shaper, include_usage: bool, tool_calls: list | None) -> web.StreamResponse:
        first_delta: dict[str, Any] = {"role": "assistant", "content": "" if not tool_calls else None}
        if tool_calls:
            first_delta["tool_calls"] = [{"index": 0, **tool_calls[0], "function": {**tool_calls[0]["function"], "arguments": ""}}]
        await send(shaper.chunk(first_delta if shaper.chat else "", with_usage_field=include_usage))
        count = 0
        while (token := await sequence.out.get()) is not None:
            count += 1
            if self.faults.drop_stream_after_tokens and count >= self.faults.drop_stream_after_tokens:
                if request.transport is not None:
                    request.transport.abort()
                return response
            await send(shaper.chunk(_delta(token, tool_calls) if shaper.chat else token.text,
                                    token=token, with_usage_field=include_usage))
        await send(shaper.chunk({} if shaper.chat else "", finish=sequence.plan.finish_reason, with_usage_field=include_usage))
        if include_usage and not self.faults.omit_usage:
            await send(shaper.usage_chunk(usage(len(sequence.prompt), count, sequence.cached_tokens)))
        await send("[DONE]")
        await response.write_eof()
        return response

    # --- Prometheus and simulator controls --------------------------------------------------

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(text=render_metrics(self.settings.model, self.engine), content_type="text/plain")

    async def get_faults(self, _: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults.update(await request.json())
        except (ValueError, TypeError, AttributeError) as err:
            return web.json_response(error(str(err), 400), status=400)
        if self.faults.refuse_connections_s > 0:
            asyncio.get_running_loop().create_task(self._refuse_for(self.faults.refuse_connections_s))
            self.faults.refuse_connections_s = 0.0
        return web.json_response(asdict(self.faults))

    async def _refuse_for(self, seconds: float) -> None:
        await asyncio.sleep(0.05)  # let the answer to /sim/faults go out first
        if self.site is not None:
            await self.site.stop()
        # A crashed engine also drops its open keep-alive connections, not only its listener.
        server = self.runner.server if self.runner is not None else None
        for handler in list(server.connections if server is not None else []):
            if handler.transport is not None:
                handler.transport.abort()
        await asyncio.sleep(seconds)
        await self._listen()

    async def get_last_request(self, _: web.Request) -> web.Response:
        return web.json_response(self.last_request)


def _forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool the model calls: forced by tool_choice, or named in the last user message."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("function")]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t["function"].get("name") == name), tools[0])
    if choice == "required":
        return tools[0]
    last_user = next((m for m in reversed(body.get("messages") or []) if m.get("role") == "user"), {})
    text = last_user.get("content") if isinstance(last_user.get("content"), str) else ""
    return next((t for t in tools if t["function"].get("name", "\0") in text), None)


def _delta(token: TokenOut, tool_calls: list | None) -> dict[str, Any]:
    if tool_calls:
        return {"tool_calls": [{"index": 0, "function": {"arguments": token.text}}]}
    return {"content": token.text}


def render_metrics(model: str, engine: Engine) -> str:
    """The vLLM metric names a gateway (or Prometheus) reads, in the text exposition format."""
    label = f'{{model_name="{model}"}}'
    hit_rate = engine.prefix_hits_total / engine.prefix_queries_total if engine.prefix_queries_total else 0.0
    rows = [
        ("vllm:num_requests_running", "gauge", "Number of requests currently running on GPU.", len(engine.running)),
        ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", len(engine.waiting)),
        ("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", engine.kv_usage),
        ("vllm:gpu_prefix_cache_hit_rate", "gauge", "GPU prefix cache block hit rate.", hit_rate),
        ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", engine.prompt_tokens_total),
        ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", engine.generation_tokens_total),
        ("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in tokens.", engine.prefix_queries_total),
        ("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in tokens.", engine.prefix_hits_total),
    ]
    lines = []
    for name, kind, help_text, value in rows:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name}{label} {float(value)}"]
    return "\n".join(lines) + "\n"


async def watch_parent(parent_pid: int) -> None:
    """Exit when the process that started us is gone, so a killed gateway leaves no orphans."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(0)
