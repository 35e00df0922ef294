"""Speculative decoding for real: transformers' assisted generation with a small model drafting for the
target, measured, and the contexts it decodes turned into a dataset the challenge can score.

    plain = decode(target, prompts, 64)                               # the target alone
    drafted = decode(target, prompts, 64, drafter=small, gamma=4)     # assisted: same tokens, fewer passes
    probs = continuation_probs([small, ..., target], plain)           # (positions, models, V) float16

`decode` runs one prompt at a time (assisted generation takes batch size 1), drafting exactly gamma
tokens per round (`num_assistant_tokens_schedule="constant"`, no confidence cut-off), always
`new_tokens` of them (EOS suppressed until then), with the full distributions (top-k and top-p off)
when sampling, so that acceptance is Leviathan et al.'s. It counts the target's forward passes and,
per round, how many drafted tokens the target accepted (`update_candidate_strategy`'s num_matches).

A strategy drafts too: `MixtureDrafter` is one model to transformers (the public `assistant_model`
path, no fork of the library) whose next-token distribution is the mean of several small models'
(`top2-average` with the two largest). It keeps no KV cache (each of its models would need its own),
so it re-reads the whole context for every drafted token: its cost, measured like any drafter's,
includes that.

`replay_tokens_per_pass` is the greedy prediction from the same contexts without the i.i.d.
assumption: the rounds that a verifier with the given per-position agreement would make.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import GenerationMixin, PreTrainedModel
from transformers.generation.candidate_generator import AssistedCandidateGenerator
from transformers.modeling_outputs import CausalLMOutputWithPast


@dataclass
class Decoded:
    """What one decoding configuration did over every prompt."""

    new_ids: list[list[int]]  # per prompt, the generated tokens
    prompt_ids: list[list[int]]
    seconds: float  # wall time of the generate calls alone
    target_passes: int  # forward passes of the target (the prefill included)
    target_seconds: float = 0.0  # of `seconds`, inside the target's forward passes
    drafter_seconds: float = 0.0  # inside the drafter's
    rounds: list[tuple[int, int]] = field(default_factory=list)  # per round: (tokens drafted, tokens accepted)

    @property
    def tokens(self) -> int:
        return sum(len(ids) for ids in self.new_ids)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def tokens_per_pass(self) -> float:
        """New tokens per target forward pass: each round yields its accepted drafts plus the target's own."""
        return self.tokens / self.target_passes

    def acceptance(self) -> float | None:
        """The per-token acceptance rate of the rounds, as the i.i.d. model has it: accepted drafts over the
        drafts the verifier looked at (all accepted ones, and the first rejected where there is one)."""
        looked = sum(accepted + (accepted < drafted) for drafted, accepted in self.rounds)
        return sum(accepted for _, accepted in self.rounds) / looked if looked else None


class MixtureDrafter(PreTrainedModel, GenerationMixin):
    """A drafter whose next-token distribution is the mean of its members' (they share the target's
    vocabulary), as one model to transformers' assisted generation. No KV cache: see the module's note."""

    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__(members[-1].config)
        self.members = torch.nn.ModuleList(members)
        self.generation_config.use_cache = False

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, cache=None, past_key_values=None, **kwargs):
        """The whole context every step: generate may hand it a cache, which it ignores, and must not cut
        the context to the new tokens."""
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        probs = sum(
            torch.softmax(member(input_ids, attention_mask=attention_mask, use_cache=False).logits.float(), -1)
            for member in self.members
        ) / len(self.members)
        return CausalLMOutputWithPast(logits=torch.log(probs))


@contextmanager
def timed_forwards(model: torch.nn.Module | None):
    """[calls, seconds]: how many times `model` ran forward inside the block, and for how long (on a GPU
    each pass is synchronized, so the time is the pass's own)."""
    record, started = [0, 0.0], []
    if model is None:
        yield record
        return
    cuda = next(model.parameters()).device.type == "cuda"

    def before(module, args):
        if cuda:
            torch.cuda.synchronize()
        started.append(time.perf_counter())

    def after(module, args, output):
        if cuda:
            torch.cuda.synchronize()
        record[0] += 1
        record[1] += time.perf_counter() - started.pop()

    handles = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def recorded_rounds(rounds: list):
    """Record (drafted, accepted) for every round of assisted generation inside the block."""
    original = AssistedCandidateGenerator.update_candidate_strategy

    def record(self, input_ids, scores, num_matches):
        rounds.append((int(scores.shape[1]) - 1, int(num_matches)))
        return original(self, input_ids, scores, num_matches)

    AssistedCandidateGenerator.update_candidate_strategy = record
    try:
        yield rounds
    finally:
        AssistedCandidateGenerator.update_candidate_strategy = original


def decode(
    target: torch.nn.Module,
    prompt_ids: list[list[int]],
    new_tokens: int,
    *,
    drafter: torch.nn.Module | None = None,
    gamma: int | None = None,
    sample: bool = False,
    seed: int = 0,
) -> Decoded:
    """Generate `new_tokens` after each prompt with `target` (greedy, or sampling from the full
    distribution, seeded per prompt), drafted by `drafter` `gamma` tokens at a time when given."""
    kwargs = dict(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=sample,
        pad_token_id=target.config.eos_token_id if target.config.pad_token_id is None else target.config.pad_token_id,
    )
    if sample:
        kwargs.update(top_k=0, top_p=1.0, temperature=1.0)
    if drafter is not None:
        config = drafter.generation_config
        config.num_assistant_tokens, config.num_assistant_tokens_schedule = gamma, "constant"
        config.assistant_confidence_threshold = 0.0
        kwargs["assistant_model"] = drafter
    device = next(target.parameters()).device
    new_ids, rounds, seconds = [], [], 0.0
    with (
        timed_forwards(target) as passes,
        timed_forwards(drafter) as drafts,
        recorded_rounds(rounds),
        torch.inference_mode(),
    ):
        for k, ids in enumerate(prompt_ids):
            torch.manual_seed(seed + k)
            inputs = torch.tensor([ids], device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = target.generate(inputs, attention_mask=torch.ones_like(inputs), **kwargs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
            new_ids.append(out[0, len(ids) :].tolist())
    return Decoded(
        new_ids, [list(ids) for ids in prompt_ids], seconds, passes[0], passes[1], drafts[1], rounds if drafter else []
    )


def continuation_probs(models: list[torch.nn.Module], decoded: Decoded, vocab_size: int) -> np.ndarray:
    """(positions, models, vocab_size) float16: each model's next-token distribution at every position of
    the decoded text, i.e. before each generated token, given the prompt and the tokens before it."""
    rows = []
    with torch.inference_mode():
        for prompt, new in zip(decoded.prompt_ids, decoded.new_ids):
            sequence = torch.tensor([prompt + new[:-1]], device=next(models[0].parameters()).device)
            per_model = []
            for model in models:
                logits = model(sequence, logits_to_keep=len(new)).logits[0, :, :vocab_size].float()
                per_model.append(torch.softmax(logits, dim=-1).to(torch.float16).cpu().numpy())
            rows.append(np.stack(per_model, axis=1))
    return np.concatenate(rows)


def replay_tokens_per_pass(agree: np.ndarray, lengths: list[int], gamma: int) -> float:
    """Greedy speculative decoding replayed on known per-position agreement (`agree`: one bool per
    generated position, prompts one after another, `lengths` each): a round accepts drafts while they
    agree, at most gamma, then adds the target's own token; tokens over rounds, as `decode` counts them."""
    tokens = rounds = 0
    start = 0
    for length in lengths:
        bits, position = agree[start : start + length], 0
        while position < length:
            accepted = 0
            while accepted < gamma and position + accepted < length - 1 and bits[position + accepted]:
                accepted += 1
            position += accepted + 1
            tokens += accepted + 1
            rounds += 1
        start += length
    return tokens / rounds
