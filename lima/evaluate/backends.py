"""Generation backends for ``generate`` and ``chat``: transformers (CPU or GPU, always there)
and vLLM (when installed).

Both feed the model the training format (each turn followed by EOT), stop at EOT and decode the
new tokens with the checkpoint's tokenizer, so their rows read the same. One difference is
real and is kept visible rather than hidden: the paper's repetition penalty (1.2) counts the
generated tokens only, and so does the transformers backend (``lima.train.generate``); vLLM's
``repetition_penalty`` also counts every token of the prompt. Each row says which it used in
``penalty_scope`` (``generated`` or ``prompt+generated``), and ``generate`` will not resume a
file with rows of the other scope.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

from lima.errors import ConfigError
from lima.train.recipe import Generation

BACKENDS = ("transformers", "vllm")


class Generator(Protocol):
    name: str
    penalty_scope: str

    def generate(
        self, prompts: list[list[str]], gen: Generation, seed: int, greedy: bool = False
    ) -> list[tuple[str, bool, int]]:
        """(text, stopped at EOT, new tokens) per prompt (a list of turns, user first)."""
        ...


class VllmModel:
    """A checkpoint served by vLLM's offline ``LLM`` engine."""

    penalty_scope = "prompt+generated"

    def __init__(self, path: Path, **engine: Any) -> None:
        try:
            import vllm
        except ImportError:
            raise ConfigError(
                "--backend vllm needs vLLM (pip install vllm, on a machine with a GPU); "
                "--backend transformers works everywhere"
            ) from None
        from transformers import AutoTokenizer

        self.vllm = vllm
        self.tok = AutoTokenizer.from_pretrained(path)
        self.eot_id = int(self.tok.eos_token_id)
        self.llm = vllm.LLM(model=str(path), tokenizer=str(path), **engine)
        # The model's window (prompt plus answer); None when the engine does not say.
        engine_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        window = getattr(engine_config, "max_model_len", None)
        self.window: int | None = int(window) if window else None
        self.name = path.name

    def generate(
        self, prompts: list[list[str]], gen: Generation, seed: int, greedy: bool = False
    ) -> list[tuple[str, bool, int]]:
        from lima.train.data import prompt_ids
        from lima.train.generate import new_token_budget

        requests = [{"prompt_token_ids": prompt_ids(self.tok, t, eot_id=self.eot_id,
                                                    bos_id=self.tok.bos_token_id)}
                    for t in prompts]  # fmt: skip
        params = [
            self.vllm.SamplingParams(
                n=1,
                temperature=0.0 if greedy else gen.temperature,
                top_p=1.0 if greedy else gen.top_p,
                repetition_penalty=gen.repetition_penalty,
                max_tokens=new_token_budget(gen, len(requests[i]["prompt_token_ids"]), self.window),
                stop_token_ids=[self.eot_id],
                seed=seed + i,
                skip_special_tokens=True,
            )
            for i in range(len(prompts))
        ]
        outs = self.llm.generate(requests, params, use_tqdm=False)
        rows = []
        for out in outs:
            done = out.outputs[0]
            ids = list(done.token_ids)
            stopped = done.finish_reason == "stop"
            body = ids[:-1] if ids and ids[-1] == self.eot_id else ids
            text = str(self.tok.decode(body, skip_special_tokens=True))
            rows.append((text, stopped, len(ids)))
        return rows


def load(path: Path, backend: str = "transformers") -> Generator:
    """The checkpoint at ``path`` behind the named backend."""
    if backend == "vllm":
        print(
            "note: vLLM's repetition penalty also counts the prompt's tokens; the paper's "
            "(and --backend transformers') counts generated tokens only. Rows record "
            "penalty_scope.",
            file=sys.stderr,
        )
        return VllmModel(path)
    if backend != "transformers":
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    from lima.evaluate.serve import Model

    return Model(path)
