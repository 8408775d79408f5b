"""Descriptions to expressions through an OpenAI-compatible chat endpoint (optional).

Any server that speaks the chat-completions protocol (``POST
<url>/chat/completions``; vLLM, llama.cpp's server, Ollama, a self-hosted
Qwen) can translate descriptions the offline parser does not cover. What is
sent is the **description text only**, with a fixed system prompt that
lists the query language (built from :mod:`datadrive.mining.vocabulary`):
never a scenario, a track or anything read from the lake. The endpoint's
region is the configuration's business (DESIGN: a model endpoint in another
region is an export); the CLI reads it from the lake config's edge.

The reply is never run as it is: the first line of it that parses *and*
binds against the vocabulary is used; anything else (no such line, an
unknown predicate, an HTTP error, a timeout, a body that is not the
chat-completions JSON) raises :class:`~datadrive.errors.TranslatorError`
saying what came back. Only the standard library's HTTP client is used.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from datadrive.errors import QueryError, TranslatorError
from datadrive.mining.describe import Translation
from datadrive.mining.query import parse, to_text
from datadrive.mining.vocabulary import CATEGORIES, PREDICATES, bind

__all__ = ["EndpointConfig", "system_prompt", "translate_remote"]


@dataclass(frozen=True)
class EndpointConfig:
    """Where the chat endpoint is.

    Attributes:
        url: Base URL, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions`` is appended).
        model: Model name the server expects.
        api_key: Sent as a bearer token when set.
        timeout_s: Per request (connect and read).
        max_tokens: Reply length cap.
    """

    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    max_tokens: int = 256


def system_prompt() -> str:
    """The fixed instructions sent with every description: the language, nothing else."""
    cats = "\n".join(f"  {c.name}: {c.doc}" for c in CATEGORIES.values())
    preds = []
    for p in PREDICATES.values():
        sig = ", ".join(
            prm.name + ("" if prm.default is None or prm.kind == "set" else "=...") for prm in p.params
        )
        preds.append(f"  {p.name}({sig}) [{p.group}]: {p.doc}")
    examples = "\n".join(
        f"  {d} -> {e}"
        for d, e in (
            ("stopped car", "car and stopped"),
            ("pedestrian crossing in front of a bus", "pedestrian and crossing(bus)"),
            (
                "ego turning left while a cyclist is near",
                "during(ego and turning(left), cyclist and near(ego))",
            ),
            ("at least 3 pedestrians at a crosswalk", "at_least(3, pedestrian and at_crosswalk)"),
            ("car within 5 m of a truck, not moving", "car and near(truck, within=5m) and not moving"),
        )
    )
    return (
        "Translate the user's description of a driving scene into ONE expression of this query language. "
        "Answer with the expression only, on one line, no explanation.\n"
        "Syntax: combine with and / or / not and parentheses; predicates take arguments in parentheses, "
        "the related objects first, then name=value with units (m, s, m/s, km/h, m/s^2, deg).\n"
        f"Categories:\n{cats}\nPredicates:\n" + "\n".join(preds) + f"\nExamples:\n{examples}"
    )


def _post(config: EndpointConfig, body: dict[str, Any]) -> dict[str, Any]:
    url = config.url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=config.timeout_s) as resp:
            raw = resp.read(1_000_001)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace") if exc.fp else ""
        raise TranslatorError(f"{url} answered HTTP {exc.code}: {detail.strip()[:300]}") from None
    except TimeoutError:
        raise TranslatorError(f"{url} did not answer within {config.timeout_s:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise TranslatorError(f"{url} did not answer within {config.timeout_s:g} s") from None
        raise TranslatorError(f"cannot reach {url}: {reason}") from None
    except OSError as exc:
        raise TranslatorError(f"cannot reach {url}: {exc}") from None
    if len(raw) > 1_000_000:
        raise TranslatorError(f"{url} answered more than 1 MB; not a chat completion")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise TranslatorError(f"{url} answered something that is not JSON: {raw[:120]!r}") from None
    if not isinstance(doc, dict):
        raise TranslatorError(f"{url} answered JSON that is not a chat completion")
    return doc


def _reply_text(doc: dict[str, Any], url: str) -> str:
    try:
        content = doc["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise TranslatorError(f"{url} answered JSON without choices[0].message.content") from None
    if not isinstance(content, str) or not content.strip():
        raise TranslatorError(f"{url} answered an empty message")
    return content


def _candidates(reply: str) -> list[str]:
    lines = []
    for line in reply.replace("\r", "").split("\n"):
        s = line.strip().strip("`").strip()
        if not s or s.lower() in ("python", "text", "sql"):
            continue
        for prefix in ("expression:", "query:", "answer:"):
            if s.lower().startswith(prefix):
                s = s[len(prefix) :].strip()
        lines.append(s)
    return lines


def translate_remote(description: str, config: EndpointConfig) -> Translation:
    """Ask the endpoint for an expression; parse and validate it before returning it.

    Raises:
        TranslatorError: the endpoint failed, timed out, or answered nothing
            that is a valid expression (the message quotes the reply).
    """
    if not description.strip():
        raise TranslatorError("the description is empty")
    body = {
        "model": config.model,
        "messages": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": description},
        ],
        "temperature": 0,
        "max_tokens": config.max_tokens,
    }
    doc = _post(config, body)
    reply = _reply_text(doc, config.url)
    problems = []
    for line in _candidates(reply):
        try:
            expr = parse(line)
            bind(expr, line)
        except QueryError as exc:
            problems.append(exc.reason)
            continue
        return Translation(description, expr, to_text(expr), translator=config.model)
    shown = reply.strip().replace("\n", " ")[:200]
    why = f" ({problems[0]})" if problems else ""
    raise TranslatorError(f"the endpoint's answer is not a valid expression: {shown!r}{why}")
