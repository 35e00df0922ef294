"""The runs of an emergence study: finetune a model on D examples of a task, score it on the test
questions, and measure its pretraining loss, the x-axis of the emergence law.

A run is (model, revision, D, seed, learning rate). It starts from the pretrained weights (kept on
the host once per model, so runs do not reload from disk), finetunes on the seed's draw of D
examples from the task's pool (full finetuning with AdamW, or LoRA through peft), loss on the
answer tokens only, then scores the validation slice (where the learning rate is chosen) and the
test questions: exact match by a teacher-forced greedy pass (lm-evaluation-harness's `is_greedy`),
or for a choice task the likelier whole continuation. Each finished run is appended to the
results file at once (`harness.forecast.study.append_result`); a rerun skips the finished ones. Under
`accelerate launch`, the processes share the runs out, one model per GPU, each appending its own.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer

from harness import InputError
from harness.cli import progress as progress_bar
from harness.forecast.study import Protocol, StudyTask, append_result, planned_runs
from harness.models.inference import (
    answer_scores,
    context_length,
    free_memory,
    length_sorted_batches,
    load_model,
    resolve_dtype,
    tokenize,
)
from harness.models.suites import ModelSpec

WARMUP_SHARE = 0.1  # of the steps: the learning rate rises linearly, then falls linearly to 0


def run_precision(dtype: str, device: str, spec: ModelSpec, lora: bool) -> tuple[torch.dtype, bool]:
    """The weights' dtype, and whether to compute in bfloat16 under autocast. `auto` on a GPU:
    float32 weights computed in bfloat16 (AdamW's updates at a learning rate of 1e-4 vanish in
    bfloat16 weights), or with LoRA the frozen base in bfloat16 (peft keeps its adapters in
    float32); on the CPU, float32. Another --dtype is taken as it is, without autocast."""
    if dtype != "auto" or not device.startswith("cuda"):
        return resolve_dtype(dtype, device, spec), False
    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (half, half == torch.bfloat16) if lora else (torch.float32, half == torch.bfloat16)


@dataclass
class Encoded:
    """A list of questions as token ids: prompts (with the tokenizer's special tokens) and answers."""

    prompts: list[list[int]]
    answers: list[list[int]]
    gold: np.ndarray | None = None  # a choice task's answer index per question

    @classmethod
    def of(cls, tokenizer: Tokenizer, rows: list[dict], choices: list[str] | None) -> Encoded:
        prompts = tokenize(tokenizer, [r["text"] for r in rows])
        answers = tokenize(tokenizer, [r["answer"] for r in rows], special_tokens=False)
        gold = None if choices is None else np.array([choices.index(r["answer"]) for r in rows])
        return cls(prompts, answers, gold)


@torch.inference_mode()
def pretraining_loss(model: torch.nn.Module, token_ids: list[list[int]], max_tokens: int = 8192) -> float:
    """Mean next-token loss (nats per token) over texts the model never trained on: every token
    after each text's first, right-padded batches sorted by length."""
    device = model.get_input_embeddings().weight.device
    token_ids = [ids[-context_length(model) :] for ids in token_ids if len(ids) > 1]
    lengths = np.array([len(ids) for ids in token_ids])
    total, count = 0.0, 0
    for batch in length_sorted_batches(lengths, max(max_tokens, int(lengths.max()))):
        rows = [torch.tensor(token_ids[i]) for i in batch]
        input_ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True).to(device)
        mask = torch.nn.utils.rnn.pad_sequence(
            [torch.ones(len(r), dtype=torch.long) for r in rows], batch_first=True
        ).to(device)
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
        total += float((nll * mask[:, 1:]).sum())
        count += int(mask[:, 1:].sum())
    return total / count


def _training_batch(
    examples: list[tuple[list[int], list[int]]], device: torch.device, context: int
) -> tuple[torch.Tensor, ...]:
    """Prompt + answer, left-padded so that every answer ends at the last position (position ids
    skip the pads), and the answers right-aligned in `width` columns as targets, -100 where a row's
    answer is shorter: the output head then runs on the last width + 1 positions only, not on the
    whole prompt (RTE's 2-shot prompts are 100 times longer than their answers)."""
    left = lambda seqs, value: (
        torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(seq).flip(0) for seq in seqs], batch_first=True, padding_value=value
        )
        .flip(1)
        .to(device)
    )
    rows = [(prompt + answer)[-context:] for prompt, answer in examples]
    mask = left([[1] * len(row) for row in rows], 0)
    return left(rows, 0), mask, (mask.cumsum(1) - 1).clamp(min=0), left([answer for _, answer in examples], -100)


def answer_loss(model: torch.nn.Module, examples: list[tuple[list[int], list[int]]], context: int) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of a batch, each given its prompt and the answer
    tokens before it (teacher forcing)."""
    input_ids, mask, position_ids, targets = _training_batch(
        examples, model.get_input_embeddings().weight.device, context
    )
    width = targets.shape[1]
    logits = model(
        input_ids=input_ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=width + 1, use_cache=False
    ).logits[:, :-1]  # position t predicts token t + 1
    return torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-100)


def finetune(
    model: torch.nn.Module,
    examples: list[tuple[list[int], list[int]]],
    learning_rate: float,
    protocol: Protocol,
    seed: int,
) -> dict:
    """Finetune `model` in place on `examples` (prompt ids, answer ids): AdamW, linear warmup and
    decay, loss on the answer tokens only, `protocol.epochs` passes in a seeded order (and at
    least `protocol.min_steps` steps)."""
    batch_size = min(protocol.batch_size, len(examples))
    steps = max(protocol.min_steps, math.ceil(protocol.epochs * len(examples) / batch_size))
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(len(examples)) for _ in range(math.ceil(steps * batch_size / len(examples)))]
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=protocol.weight_decay)
    warmup = max(1, int(WARMUP_SHARE * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup)))
    )
    context = context_length(model)
    model.train()
    losses = []
    for step in range(steps):
        loss = answer_loss(model, [examples[i] for i in order[step * batch_size : (step + 1) * batch_size]], context)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.detach().item())
    model.eval()
    return {"steps": steps, "final_train_loss": float(np.mean(losses[-max(1, steps // 10) :]))}


def task_outcomes(
    model: torch.nn.Module, questions: Encoded, vocab_size: int, choice_ids: list[list[int]] | None
) -> np.ndarray:
    """Whether the model answers each question: greedy decoding writes the whole answer, or (a
    choice task) the answer is the likeliest choice."""
    prompts = [
        p[-(context_length(model) - max(map(len, [a, *(choice_ids or [])]))) :]
        for p, a in zip(questions.prompts, questions.answers)
    ]
    scores = answer_scores(model, prompts, questions.answers, vocab_size, choice_ids=choice_ids, progress=False)
    if choice_ids:
        return scores["choice_logprobs"].argmax(1) == questions.gold
    return scores["greedy"].astype(bool)


def with_lora(model: torch.nn.Module, rank: int) -> torch.nn.Module:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise InputError("--lora needs the package peft (pip install peft)") from None
    return get_peft_model(
        model,
        LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM"),
    )


@dataclass
class Study:
    """Everything a study of one task runs: its models, data sizes, seeds and protocol."""

    task: StudyTask
    specs: list[ModelSpec]
    data_sizes: list[int]
    seeds: list[int]
    protocol: Protocol
    loss_texts: list[str]
    loss_source: str
    device: str | None = None
    finished: set = field(default_factory=set)  # run keys already in the results file

    def unfinished(self) -> list[tuple[ModelSpec, int, int, float | None]]:
        """(spec, D, seed, learning rate) of every run not in the results file, model by model."""
        specs = {(spec.stored_name, spec.revision): spec for spec in self.specs}
        keys = planned_runs(
            self.task.name, list(specs), self.data_sizes, self.seeds, list(self.protocol.learning_rates)
        )
        return [(specs[key[1:3]], *key[3:]) for key in keys if key not in self.finished]


def run_study(
    study: Study, tokenizer: Tokenizer, results: Path, progress: bool = True, rank: int = 0, world_size: int = 1
) -> int:
    """Every unfinished run of `study` (this process's share of them), each appended to `results`
    as it ends. Returns how many ran."""
    todo = study.unfinished()[rank::world_size]
    if not todo:
        return 0
    task, protocol = study.task, study.protocol
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    choice_ids = None if task.choices is None else tokenize(tokenizer, task.choices, special_tokens=False)
    test, validation, pool = (
        Encoded.of(tokenizer, part, task.choices) for part in (task.test, task.validation, task.pool)
    )
    loss_ids = tokenize(tokenizer, study.loss_texts)
    device = study.device or ("cuda" if torch.cuda.is_available() else "cpu")
    transformers.utils.logging.disable_progress_bar()  # one bar, over the runs: not one per model load
    bar = progress_bar(total=len(todo), desc=f"{task.name} runs", unit="run", disable=not progress)
    loaded, base, pristine, loss = None, None, None, None
    for spec, size, seed, rate in todo:
        if (spec.name, spec.revision) != loaded:
            base = pristine = None
            free_memory()
            weights, autocast = run_precision(protocol.dtype, device, spec, protocol.lora_rank is not None)
            base = load_model(spec, device, weights)
            pristine = {k: v.detach().to("cpu", copy=True) for k, v in base.state_dict().items()}  # host copy
            loss = pretraining_loss(base, loss_ids)
            loaded = (spec.name, spec.revision)
        base.load_state_dict(pristine)
        bar.set_postfix_str(f"{spec.stored_name} D={size} lr={rate}")
        start = time.perf_counter()
        torch.manual_seed(seed)
        model, stats = base, {"steps": 0}
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
            if size:
                chosen = np.random.default_rng(seed).permutation(len(pool.prompts))[:size]
                examples = [(pool.prompts[i], pool.answers[i]) for i in chosen]
                if protocol.lora_rank is not None:
                    model = with_lora(copy.deepcopy(base), protocol.lora_rank)
                stats = finetune(model, examples, rate, protocol, seed)
            finetune_seconds = time.perf_counter() - start
            valid = task_outcomes(model, validation, vocab_size, choice_ids)
            outcomes = task_outcomes(model, test, vocab_size, choice_ids)
        record = {
            "task": task.name,
            "model": spec.stored_name,
            "revision": spec.revision,
            "pretraining_loss": round(loss, 6),
            "loss_text": study.loss_source,
            "data_size": size,
            "seed": seed,
            "learning_rate": rate,
            "validation_accuracy": float(valid.mean()),
            "validation_n": len(valid),
            "correct": int(outcomes.sum()),
            "n": len(outcomes),
            "outcomes": "".join("1" if o else "0" for o in outcomes),
            **protocol.record(),
            **stats,
            "precision": str(weights).removeprefix("torch.") + (" weights, bfloat16 autocast" if autocast else ""),
            "task_fingerprint": task.fingerprint(),
            "finetune_seconds": round(finetune_seconds, 2),
            "seconds": round(time.perf_counter() - start, 2),
        }
        if spec.label is not None:
            record["path"] = spec.name
        append_result(results, record)
        del model
        bar.update(1)
    bar.close()
    return len(todo)
