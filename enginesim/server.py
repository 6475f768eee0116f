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

from .engine import DEFAULT_MAX_BATCHED_TOKENS, Engine, LinearTiming, Sequence, TimingModel
from .responses import Shaper, error, usage
from .textgen import (
    Plan,
    Sureness,
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
    max_num_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS  # one step's token budget (vLLM's --max-num-batched-tokens)
    kv_capacity_tokens: int = 200_000
    time_scale: float = 1.0
    sureness: Sureness = Sureness()
    timing: TimingModel = LinearTiming()


class Simulator:
    def __init__(self, settings: SimSettings, faults: Faults | None = None, seed: int = 0) -> None:
        self.settings = settings
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.engine = Engine(
            settings.timing,
            max_num_seqs=settings.max_num_seqs,
            max_num_batched_tokens=settings.max_num_batched_tokens,
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
        app.router.add_post("/v1/embeddings", self.embeddings)
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

    async def embeddings(self, request: web.Request) -> web.Response:
        """OpenAI's embeddings API: a deterministic unit vector per input (from its text's hash),
        ``encoding_format`` float or base64 (what the openai SDK asks for by default), timed as a
        prefill of the inputs (one token's decode step added: the engine's way to finish a sequence)."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response(error("invalid JSON body", 400), status=400)
        self.last_request = body if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("model") != self.settings.model:
            return web.json_response(error(f"The model `{(body or {}).get('model')}` does not exist.", 404, "NotFoundError"),
                                     status=404)
        raw = body.get("input")
        items = raw if isinstance(raw, list) and raw and not all(isinstance(t, int) for t in raw) else [raw]
        if raw in (None, "", []) or not all(isinstance(i, str) or (isinstance(i, list) and all(isinstance(t, int) for t in i))
                                            for i in items):
            return web.json_response(error("input must be a string, a list of strings or token lists", 400), status=400)
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
        fmt = body.get("encoding_format") or "float"
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096 or fmt not in ("float", "base64"):
            return web.json_response(error("dimensions must be 1-4096 and encoding_format float or base64", 400), status=400)
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            return web.json_response(error("injected fault", 500, "InternalServerError"), status=500)
        texts = [i if isinstance(i, str) else json.dumps(i) for i in items]
        sequences = [self.engine.submit(tokenize(text), plan_answer(text, 0, 1, []), body.get("cache_salt") or "")
                     for text in texts]
        prompt_tokens = 0
        for sequence in sequences:
            while await sequence.out.get() is not None:
                pass
            prompt_tokens += len(sequence.prompt)
        data = [{"object": "embedding", "index": i, "embedding": _encode(_vector(text, dimensions), fmt)}
                for i, text in enumerate(texts)]
        return web.json_response({"object": "list", "data": data, "model": self.settings.model,
                                  "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})

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
        problem = _invalid(body)
        if problem:
            return web.json_response(error(problem, 400), status=400)
        if self.faults.extra_latency_ms:
            await asyncio.sleep(self.faults.extra_latency_ms / 1000)
        if self.faults.error_rate and self.rng.random() < self.faults.error_rate:
            return web.json_response(error("injected fault", 500, "InternalServerError"), status=500)
        try:
            planned = self._answers(body, chat)
        except (KeyError, TypeError, ValueError) as err:
            return web.json_response(error(f"invalid request: {err}", 400), status=400)
        salt = body.get("cache_salt") or ""
        sequences = [self.engine.submit(tokenize(text), plan, salt) for text, plan, _ in planned]
        tool_calls = [calls for _, _, calls in planned]
        shaper = Shaper(
            uuid.uuid4().hex,
            self.settings.model,
            chat,
            logprobs=bool(body.get("logprobs")),
            top_logprobs=int(body.get("top_logprobs") or 0) if chat else int(body.get("logprobs") or 0),
        )
        returned = _returned(body, len(sequences))
        try:
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(request, sequences, returned, shaper, include_usage, tool_calls)
            return await self._whole(request, sequences, returned, shaper, tool_calls)
        finally:
            for sequence in sequences:
                if not sequence.done:
                    self.engine.abort(sequence)

    def _answers(self, body: dict[str, Any], chat: bool) -> list[tuple[str, Plan, list | None]]:
        """What to generate, per completion: the prompt text, the planned tokens, tool calls if any.
        A batch of prompts (legacy completions) and ``n`` (or ``best_of``) give several."""
        if chat:
            prompts = [flatten_chat(body["messages"], body.get("tools") or body.get("functions"))]
        else:
            prompt = body["prompt"]
            if isinstance(prompt, str):
                prompts = [prompt]
            elif isinstance(prompt, list) and prompt and not all(isinstance(t, int) for t in prompt):
                prompts = [p if isinstance(p, str) else json.dumps(p) for p in prompt]
            else:
                prompts = [json.dumps(prompt)]
        per_prompt = max(int(body.get("n") or 1), int(body.get("best_of") or 1))
        return [self._answer(body, chat, text, index) for text in prompts for index in range(per_prompt)]

    def _answer(self, body: dict[str, Any], chat: bool, prompt_text: str, index: int) -> tuple[str, Plan, list | None]:
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        seed = body.get("seed")
        varied = prompt_text if index == 0 else f"{prompt_text}\x00{index}"  # each of n completions differs
        plan = plan_answer(varied, seed, max_tokens, stop, self.settings.sureness)
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

    async def _whole(self, request: web.Request, sequences: list[Sequence], returned: list[int], shaper: Shaper,
                     tool_calls: list[list | None]) -> web.StreamResponse:
        outputs: list[list[TokenOut]] = []
        for sequence in sequences:
            tokens: list[TokenOut] = []
            while (token := await sequence.out.get()) is not None:
                tokens.append(token)
            outputs.append(tokens)
        choices = [shaper.choice(index, outputs[i], sequences[i].plan.finish_reason, tool_calls[i])
                   for index, i in enumerate(returned)]
        answer = shaper.envelope(choices, _usage(sequences, [len(o) for o in outputs]))
        if self.faults.omit_usage:
            del answer["usage"]
        if self.faults.drop_stream_after_tokens and sum(map(len, outputs)) >= self.faults.drop_stream_after_tokens:
            return await self._cut_after_headers(request, json.dumps(answer).encode())
        return web.json_response(answer)

    async def _cut_after_headers(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """The fault of a server that dies mid-answer: status and headers sent, half the body, then gone."""
        response = web.StreamResponse(headers={"content-type": "application/json", "content-length": str(len(body))})
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        return response

    async def _stream(self, request: web.Request, sequences: list[Sequence], returned: list[int], shaper: Shaper,
                      include_usage: bool, tool_calls: list[list | None]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)

        async def send(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            await response.write(f"data: {data}\n\n".encode())

        try:
            return await self._send_stream(request, response, send, sequences, returned, shaper, include_usage, tool_calls)
        except ConnectionResetError:  # the client (a gateway cancelling a cascade, say) went away
            return response

    async def _send_stream(self, request: web.Request, response: web.StreamResponse, send: Any,
                           sequences: list[Sequence], returned: list[int], shaper: Shaper, include_usage: bool,
                           tool_calls: list[list | None]) -> web.StreamResponse:
        shown = {i: index for index, i in enumerate(returned)}  # sequence -> the choice index the client sees
        for i, index in shown.items():
            calls = tool_calls[i]
            first_delta: dict[str, Any] = {"role": "assistant", "content": "" if not calls else None}
            if calls:
                first_delta["tool_calls"] = [{"index": 0, **calls[0], "function": {**calls[0]["function"], "arguments": ""}}]
            await send(shaper.chunk(first_delta if shaper.chat else "", with_usage_field=include_usage, index=index))
        counts = [0] * len(sequences)
        events: asyncio.Queue[tuple[int, TokenOut | None]] = asyncio.Queue()

        async def pump(i: int, sequence: Sequence) -> None:
            while (token := await sequence.out.get()) is not None:
                await events.put((i, token))
            await events.put((i, None))

        pumps = [asyncio.get_running_loop().create_task(pump(i, s)) for i, s in enumerate(sequences)]
        try:
            open_sequences = len(sequences)
            while open_sequences:
                i, token = await events.get()
                if token is None:
                    open_sequences -= 1
                    if i in shown:
                        await send(shaper.chunk({} if shaper.chat else "", finish=sequences[i].plan.finish_reason,
                                                with_usage_field=include_usage, index=shown[i]))
                    continue
                counts[i] += 1
                if self.faults.drop_stream_after_tokens and sum(counts) >= self.faults.drop_stream_after_tokens:
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if i in shown:
                    await send(shaper.chunk(_delta(token, tool_calls[i]) if shaper.chat else token.text,
                                            token=token, with_usage_field=include_usage, index=shown[i]))
        finally:
            for task in pumps:
                task.cancel()
        if include_usage and not self.faults.omit_usage:
            await send(shaper.usage_chunk(_usage(sequences, counts)))
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
    last_user: dict[str, Any] = next((m for m in reversed(body.get("messages") or []) if m.get("role") == "user"), {})
    content = last_user.get("content")
    text = content if isinstance(content, str) else ""
    return next((t for t in tools if t["function"].get("name", "\0") in text), None)


def _invalid(body: dict[str, Any]) -> str | None:
    """What vLLM itself refuses that a gateway passes through (its own extensions)."""
    salt = body.get("cache_salt")
    if salt is not None and (not isinstance(salt, str) or not salt):
        return "cache_salt must be a non-empty string"
    top_k = body.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or top_k == 0 or top_k < -1):
        return f"top_k must be -1 (disable), or at least 1, got {top_k}."
    for name in ("n", "best_of"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or value < 1):
            return f"{name} must be at least 1, got {value}."
        if isinstance(value, int) and value > 128:  # the simulator's own guard: each answer is held in memory
            return f"{name} must be at most 128, got {value}."
    return None


def _returned(body: dict[str, Any], generated: int) -> list[int]:
    """Which generated completions the client gets: ``n`` of every ``best_of`` per prompt."""
    n = int(body.get("n") or 1)
    per_prompt = max(n, int(body.get("best_of") or 1))
    return [p * per_prompt + i for p in range(generated // per_prompt) for i in range(n)]


def _usage(sequences: list[Sequence], completion_tokens: list[int]) -> dict[str, Any]:
    """One prompt's tokens per distinct prompt (``n`` completions share it), every completion's tokens."""
    seen: dict[tuple[int, ...], Sequence] = {}
    for sequence in sequences:
        seen.setdefault(tuple(sequence.prompt), sequence)
    prompts = list(seen.values())
    return usage(sum(len(s.prompt) for s in prompts), sum(completion_tokens), sum(s.cached_tokens for s in prompts))


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
        ("vllm:num_preemptions_total", "counter", "Cumulative number of preemption from the engine.", engine.preemptions),
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


EMBEDDING_DIMENSIONS = 384  # all-MiniLM-L6-v2's, a common small embedding model


def _vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the text (the same input, the same embedding)."""
    import hashlib
    import math

    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [b / 127.5 - 1.0 for b in digest]
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _encode(vector: list[float], fmt: str) -> list[float] | str:
    """float: the list; base64: little-endian float32 bytes, as OpenAI and vLLM send them."""
    if fmt == "float":
        return vector
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
