"""Sampling as in the paper, and the per-epoch dev generations that the checkpoint is picked by.

transformers' own repetition penalty also punishes the prompt's tokens; the paper applies it to
the generated tokens only, so that is written here as a logits processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from lima.train.data import prompt_ids
from lima.train.recipe import Generation


class GeneratedTokensRepetitionPenalty(LogitsProcessor):
    """CTRL's repetition penalty over the tokens generated after ``prompt_width``."""

    def __init__(self, penalty: float, prompt_width: int) -> None:
        if penalty < 1:
            raise ValueError("repetition penalty must be >= 1")
        self.penalty = penalty
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_width :]
        if generated.shape[1] == 0 or self.penalty == 1:
            return scores
        picked = torch.gather(scores, 1, generated)
        picked = torch.where(picked < 0, picked * self.penalty, picked / self.penalty)
        return scores.scatter(1, generated, picked)  # type: ignore[return-value]


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def model_window(model: Any) -> int | None:
    """The positions the model was trained for (LLaMA's 2048): prompt plus generation."""
    window = getattr(model.config, "max_position_embeddings", None)
    return int(window) if window else None


def new_token_budget(gen: Generation, prompt_width: int, window: int | None) -> int:
    """``max_new_tokens``, capped so that prompt and answer fit the window together (the
    paper's 2048 is the model's window, not a count of new tokens on top of the prompt)."""
    if window is None:
        return gen.max_new_tokens
    if prompt_width >= window:
        raise ValueError(
            f"a prompt of {prompt_width} tokens leaves no room in the model's window of {window}"
        )
    return min(gen.max_new_tokens, window - prompt_width)


def sample(
    model: Any,
    batch: list[list[int]],
    *,
    gen: Generation,
    eot_id: int,
    pad_id: int,
    seed: int,
    synced: bool = False,
    greedy: bool = False,
) -> list[list[int]]:
    """Left-pads ``batch`` and samples a continuation of each row, up to and including EOT,
    within the model's window (the batch's longest prompt sets the budget)."""
    width = max(len(p) for p in batch)
    budget = new_token_budget(gen, width, model_window(model))
    device = next(model.parameters()).device
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(batch):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    processors = LogitsProcessorList(
        [GeneratedTokensRepetitionPenalty(gen.repetition_penalty, width)]
    )
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=not greedy,
            top_p=None if greedy else gen.top_p,
            top_k=None if greedy else 0,
            temperature=None if greedy else gen.temperature,
            repetition_penalty=1.0,
            logits_processor=processors,
            max_new_tokens=budget,
            eos_token_id=eot_id,
            pad_token_id=pad_id,
            use_cache=True,
            synced_gpus=synced,
        )
    rows = []
    for row in out[:, width:].tolist():
        if eot_id in row:
            row = row[: row.index(eot_id) + 1]
        else:
            while row and row[-1] == pad_id:
                row.pop()
        rows.append(row)
    return rows


def dev_generations(
    model: Any,
    tok: Any,
    prompts: list[tuple[str, list[str]]],
    *,
    gen: Generation,
    eot_id: int,
    pad_id: int,
    seed: int,
    epoch: int,
    synced: bool,
) -> list[dict[str, Any]] | None:
    """Generates every dev prompt, sharded over the ranks in lock-step (ZeRO-3 needs every rank
    in every forward pass). Returns the rows on rank 0, ``None`` elsewhere."""
    rank, world = _dist()
    mine = list(range(rank, len(prompts), world))
    per_rank = -(-len(prompts) // world)
    n_batches = -(-per_rank // gen.batch_size)
    was_training = model.training
    model.eval()
    results: list[tuple[int, list[int]]] = []
    try:
        for b in range(n_batches):
            idx = mine[b * gen.batch_size : (b + 1) * gen.batch_size]
            # A rank with fewer prompts repeats its last one (or the first prompt) so every rank
            # runs the same number of forward passes; the extra results are dropped.
            filler = idx[-1:] or [0]
            padded = idx + filler * (min(gen.batch_size, per_rank) - len(idx))
            encoded = [prompt_ids(tok, prompts[i][1], eot_id=eot_id, bos_id=tok.bos_token_id)
                       for i in padded]  # fmt: skip
            outs = sample(
                model,
                encoded,
                gen=gen,
                eot_id=eot_id,
                pad_id=pad_id,
                seed=seed + 1_000_003 * epoch + 7919 * (b * world + rank),
                synced=synced,
            )
            results += list(zip(idx, outs[: len(idx)], strict=True))
    finally:
        model.train(was_training)
    gathered: list[Any] = [results]
    if world > 1:
        gathered = [None] * world if rank == 0 else []
        torch.distributed.gather_object(results, gathered if rank == 0 else None, dst=0)
    if rank != 0:
        return None
    rows = []
    for i, out in sorted(pair for part in gathered for pair in part):
        pid, turns = prompts[i]
        stopped = bool(out) and out[-1] == eot_id
        text = tok.decode(out[:-1] if stopped else out, skip_special_tokens=False)
        rows.append({
            "id": pid,
            "epoch": epoch,
            "prompt": turns[-1] if len(turns) % 2 == 1 else turns[-2],
            "generation": text,
            "stopped_at_eot": stopped,
            "new_tokens": len(out),
        })  # fmt: skip
    return rows


def side_by_side(gen_dir: Path, out: Path) -> None:
    """The page the checkpoint is picked by: one row per dev prompt, the epochs' answers in
    shuffled columns, each epoch revealed once a row is picked (``lima.train.picks``; serve it
    with ``lima-train picks RUN_DIR`` to save the picks beside it)."""
    from lima.train.picks import write_page

    write_page(gen_dir, out)
