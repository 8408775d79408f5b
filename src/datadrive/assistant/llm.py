"""Optional language models: an OpenAI-compatible chat endpoint, or a small local model.

The assistant works without any model (the offline intent parser). A model,
when configured, only chooses tools and phrases the answer: the tools run
here, over the lake, and the number check
(:mod:`datadrive.assistant.grounding`) runs on whatever the model writes
before it is shown.

:class:`ChatEndpoint` speaks the chat-completions protocol
(``POST {base_url}/chat/completions`` with ``messages`` and ``tools``; the
reply's ``choices[0].message`` holds ``content`` and/or ``tool_calls``) over
plain HTTP(S) with a timeout, standard library only. Every failure (refused
connection, timeout, HTTP error, a body that is not the protocol's JSON, a
tool call with unparsable arguments) raises
:class:`~datadrive.errors.EndpointError`.

Each endpoint has a region. Sending a vehicle's data or anything derived
from it to an endpoint outside the data's region is judged like an export by
the lake (:meth:`datadrive.lake.Lake.authorize_transfer`) and, unless the
region's policy lets raw data go there, refused and audited.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from datadrive.errors import EndpointError

__all__ = ["ChatEndpoint", "ChatModel", "ChatReply", "EndpointConfig", "ToolCallRequest"]


@dataclass(frozen=True)
class EndpointConfig:
    """A configured chat endpoint.

    Attributes:
        name: What audits and answers call it.
        base_url: The API root, e.g. ``https://llm.eu-central.example/v1``.
        model: The model name sent with each request.
        region: Where the endpoint runs (a lake region name).
        api_key: Bearer token, if the endpoint needs one (never logged).
        timeout_s: Per-request timeout.
        max_rounds: Tool-calling rounds before the model must answer.
    """

    name: str
    base_url: str
    model: str
    region: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    max_rounds: int = 4


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatReply:
    """The model's reply: text, tool calls, or both."""

    content: str
    tool_calls: tuple[ToolCallRequest, ...] = ()
    completion_tokens: int | None = None


class ChatModel(Protocol):
    """Anything that answers chat-completion requests (an endpoint, a local model)."""

    name: str
    region: str | None
    """The region it runs in; None for a model running in this process (in the data's region)."""

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> ChatReply:
        """One chat completion.

        Raises:
            EndpointError: if the model failed or answered garbage.
        """
        ...


def parse_reply(body: bytes, who: str) -> ChatReply:
    """A chat-completions response body -> :class:`ChatReply`.

    Raises:
        EndpointError: if it is not the protocol's JSON.
    """
    try:
        doc = json.loads(body.decode("utf-8"))
        message = doc["choices"][0]["message"]
        if not isinstance(message, dict):
            raise TypeError("message is not an object")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        snippet = body[:80].decode("utf-8", "replace")
        raise EndpointError(
            f"{who} answered something that is not a chat completion ({type(exc).__name__}: {snippet!r})"
        ) from None
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise EndpointError(f"{who} answered content that is not text")
    calls = []
    for i, call in enumerate(message.get("tool_calls") or []):
        try:
            fn = call["function"]
            raw_args = fn.get("arguments") or "{}"
            args = json.loads(raw_args) if isinstance(raw_args, str) else raw_args
            if not isinstance(args, dict):
                raise TypeError("arguments are not an object")
            calls.append(ToolCallRequest(str(call.get("id") or f"call_{i}"), str(fn["name"]), args))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise EndpointError(
                f"{who} asked for a tool call that does not parse ({type(exc).__name__})"
            ) from None
    usage = doc.get("usage") if isinstance(doc, dict) else None
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return ChatReply(content, tuple(calls), tokens if isinstance(tokens, int) else None)


class ChatEndpoint:
    """An OpenAI-compatible chat-completions endpoint over HTTP."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.name = config.name
        self.region: str | None = config.region

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> ChatReply:
        c = self.config
        payload: dict[str, Any] = {"model": c.model, "messages": list(messages), "temperature": 0}
        if tools:
            payload["tools"] = list(tools)
            payload["tool_choice"] = "auto"
        headers = {"Content-Type": "application/json"}
        if c.api_key:
            headers["Authorization"] = f"Bearer {c.api_key}"
        request = urllib.request.Request(
            c.base_url.rstrip("/") + "/chat/completions",
            data=json.dumps(payload).encode(),
            headers=headers,
            method="POST",
        )
        who = f"endpoint {c.name}"
        try:
            with urllib.request.urlopen(request, timeout=c.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise EndpointError(f"{who} answered HTTP {exc.code} ({exc.reason})") from None
        except TimeoutError:
            raise EndpointError(f"{who} did not answer within {c.timeout_s:g} s") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError | socket.timeout):
                raise EndpointError(f"{who} did not answer within {c.timeout_s:g} s") from None
            raise EndpointError(f"{who} cannot be reached ({reason})") from None
        except (ConnectionError, OSError) as exc:
            raise EndpointError(f"{who} failed ({exc})") from None
        return parse_reply(body, who)
