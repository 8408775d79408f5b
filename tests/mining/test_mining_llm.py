"""The OpenAI-compatible translator against a real HTTP server on 127.0.0.1 with canned replies.

The server speaks the chat-completions protocol (POST /v1/chat/completions,
JSON in and out); each test sets what it answers. It checks what the client
sends (only the description, plus the fixed system prompt) and that every
kind of bad answer becomes a TranslatorError.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from datadrive.errors import TranslatorError
from datadrive.mining.llm import EndpointConfig, system_prompt, translate_remote
from datadrive.mining.query import parse


class _Server:
    def __init__(self) -> None:
        self.reply: Any = None  # what the next request gets: (status, body bytes, delay_s)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                status, payload, delay = outer.reply
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(
        self, content: str | None = None, *, status: int = 200, raw: bytes | None = None, delay: float = 0
    ) -> None:
        if raw is None:
            raw = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                }
            ).encode()
        self.reply = (status, raw, delay)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join(timeout=5)


def cfg(server: _Server, **kw: Any) -> EndpointConfig:
    return EndpointConfig(url=server.url, model="qwen2.5-7b", **kw)


def test_a_valid_answer_is_parsed_validated_and_used(server: _Server) -> None:
    server.answer("car and stopped and near(pedestrian, within=5m)")
    t = translate_remote("a stopped car next to a person", cfg(server, api_key="k"))
    assert t.expression == parse("car and stopped and near(pedestrian, within=5m)")
    assert t.translator == "qwen2.5-7b"
    sent = server.requests[0]
    assert sent["model"] == "qwen2.5-7b"
    assert sent["temperature"] == 0
    user = [m for m in sent["messages"] if m["role"] == "user"]
    assert [m["content"] for m in user] == ["a stopped car next to a person"]  # only the description
    assert [m["content"] for m in sent["messages"] if m["role"] == "system"] == [system_prompt()]
    assert server.headers[0]["Authorization"] == "Bearer k"


def test_code_fences_and_chatter_around_the_expression(server: _Server) -> None:
    server.answer("Sure! Here it is:\n```\npedestrian and at_crosswalk\n```\nHope this helps.")
    t = translate_remote("people on the zebra crossing", cfg(server))
    assert t.text == "pedestrian and at_crosswalk"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("car and teleporting", "not a valid expression"),
        ("I cannot help with that.", "not a valid expression"),
        ("near(car, within=5 parsecs)", "unknown unit"),
        ("", "empty message"),
    ],
)
def test_garbage_answers_are_refused(server: _Server, content: str, match: str) -> None:
    server.answer(content)
    with pytest.raises(TranslatorError, match=match):
        translate_remote("something", cfg(server))


@pytest.mark.parametrize(
    ("raw", "status", "match"),
    [
        (b"<html>oops</html>", 200, "not JSON"),
        (b'{"choices": []}', 200, "without choices"),
        (b'["not", "an", "object"]', 200, "not a chat completion"),
        (b'{"error": "model not loaded"}', 503, "HTTP 503"),
    ],
)
def test_protocol_failures_are_refused(server: _Server, raw: bytes, status: int, match: str) -> None:
    server.answer(raw=raw, status=status)
    with pytest.raises(TranslatorError, match=match):
        translate_remote("something", cfg(server))


def test_timeouts_and_unreachable_servers(server: _Server) -> None:
    server.answer("car", delay=2.0)
    start = time.monotonic()
    with pytest.raises(TranslatorError, match=r"did not answer within 0\.5 s"):
        translate_remote("a car", cfg(server, timeout_s=0.5))
    assert time.monotonic() - start < 1.9
    dead = EndpointConfig(url="http://127.0.0.1:9/v1", model="m", timeout_s=2.0)
    with pytest.raises(TranslatorError, match="cannot reach"):
        translate_remote("a car", dead)
