"""The OpenAI wire protocol as pydantic models: what a request may contain, checked at the edge.

These models validate; they do not serialize what goes upstream. The gateway forwards the
client's own JSON (with ``model`` rewritten), so fields this file does not know about (new
OpenAI parameters, engine extensions such as vLLM's ``top_k``) pass through untouched.
``parse_request`` is the pipeline's parse stage: the body in, a ``ParsedRequest`` out, or a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from wire.tokens import completions_requested

from .errors import APIError, from_validation_error

CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"


class _Open(BaseModel):
    """Unknown fields are allowed and kept: the gateway must not drop parameters it does not know."""

    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # str, a list of content parts (text, image_url, input_audio, ...), or None for an
    # assistant turn that only carries tool calls.
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class _SamplingParams(_Open):
    """Parameters shared by chat and legacy completions."""

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return stop


class ChatCompletionRequest(_SamplingParams):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None

    def output_budget(self) -> int | None:
        """The most completion tokens the client allows (``max_completion_tokens`` wins)."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_SamplingParams):
    # A string, a list of strings, a list of token ids, or a list of token-id lists.
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=20)  # OpenAI's limit

    def output_budget(self) -> int | None:
        return self.max_tokens


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1)
    # A string, a list of strings, a list of token ids, or a list of token-id lists (OpenAI: at most 2,048).
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value == "" or value == [] or (isinstance(value, list) and len(value) > 2048 and not isinstance(value[0], int)):
            raise ValueError("input must be a non-empty string or a list of 1 to 2048 inputs")
        if isinstance(value, list) and any(item == "" or item == [] for item in value):
            raise ValueError("input must not contain empty strings or lists")
        return value


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the gateway itself needs to know of a valid request (the body goes upstream as it is)."""

    model: str
    stream: bool
    include_usage: bool  # a stream whose client asked for the usage chunk
    outputs: int  # completions the engine may generate: n, or best_of (legacy) when larger


def requested_model(body: dict[str, Any] | None) -> str:
    """The model a body names, even an invalid body (for its ledger record); "" when none."""
    model = body.get("model") if body else None
    return model[:200] if isinstance(model, str) else ""


MAX_NESTING = 64  # deeper JSON is refused: nothing in the API nests a tenth as deep
MAX_COMPLETIONS = 256  # completions one request may make engines generate (prompts x n or best_of)


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value has arrays or objects nested more than ``limit`` deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def parse_request(body: dict[str, Any], endpoint: str) -> ParsedRequest:
    """Validate a chat, legacy completion or embeddings body; a 400 naming the first bad field otherwise."""
    if nests_deeper_than(body, MAX_NESTING):
        raise APIError(400, f"the request body nests arrays or objects more than {MAX_NESTING} levels deep",
                       code="nesting_too_deep")
    if endpoint == EMBEDDINGS:
        try:
            embedding = EmbeddingRequest.model_validate(body)
        except ValidationError as err:
            raise from_validation_error(err) from None
        return ParsedRequest(embedding.model, False, False, 1)
    spec: type[ChatCompletionRequest] | type[CompletionRequest] = ChatCompletionRequest if endpoint == CHAT else CompletionRequest
    try:
        parsed = spec.model_validate(body)
    except ValidationError as err:
        raise from_validation_error(err) from None
    outputs = parsed.n or 1
    if isinstance(parsed, CompletionRequest) and parsed.best_of:
        if parsed.best_of < outputs:
            raise APIError(400, "best_of must be at least n", code="invalid_value", param="best_of")
        outputs = parsed.best_of
    if completions_requested(body) > MAX_COMPLETIONS:
        raise APIError(400, f"one request may ask for at most {MAX_COMPLETIONS} completions (prompts x n or best_of); "
                       "split the batch", code="invalid_value", param="n")
    include_usage = bool(parsed.stream and parsed.stream_options and parsed.stream_options.include_usage)
    return ParsedRequest(parsed.model, bool(parsed.stream), include_usage, outputs)
