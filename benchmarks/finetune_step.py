"""One finetuning step of predict_emergence.py, timed side by side in one process: the output head
on the answer positions only (`harness.forecast.finetune.answer_loss`, left padding and
`logits_to_keep`) against the head on every position (right padding, the loss masked to the
answer), on the bundled suite's models, for 2-digit addition and 2-shot RTE prompts.

    python3 benchmarks/finetune_step.py [--steps 5] [--rte ../shared/data/corpus/rte-train.tsv]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.forecast.study import arithmetic_task, builder_task  # noqa: E402
from harness.forecast.finetune import Encoded, answer_loss  # noqa: E402
from harness.models.inference import load_model, shared_tokenizer  # noqa: E402
from harness.models.suites import ModelSpec  # noqa: E402


def full_logits_loss(model: torch.nn.Module, examples: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """The head on every position, right-padded; targets -100 except the answer's tokens."""
    rows = [torch.tensor(p + a) for p, a in examples]
    targets = [torch.tensor([-100] * len(p) + a)[1:].tolist() + [-100] for p, a in examples]
    pad = lambda seqs, value: torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)
    mask = pad([torch.ones(len(r), dtype=torch.long) for r in rows], 0)
    logits = model(input_ids=pad(rows, 0), attention_mask=mask, use_cache=False).logits
    return torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), pad([torch.tensor(t) for t in targets],
                                                                                -100), ignore_index=-100)


def seconds_per_step(model, examples, loss_fn, steps: int) -> float:
    loss_fn(model, examples).backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss_fn(model, examples).backward()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rte", default=str(Path(__file__).resolve().parents[2] / "shared/data/corpus/rte-train.tsv"))
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    tasks = {"2-digit addition": arithmetic_task(2, test_size=10, validation_size=10)}
    if Path(args.rte).exists():
        tasks["2-shot RTE"] = builder_task("glue-rte", 10, 10, dataset_path=args.rte, shots=2)
    print("| task | model | answer positions only (s/step) | every position (s/step) | speedup |\n|---|---|---:|---:|---:|")
    for name in ("suite-0.34m", "suite-1.5m"):
        spec = ModelSpec(str(Path(__file__).resolve().parents[1] / "suite" / "models" / name))
        tokenizer = shared_tokenizer([spec])
        model = load_model(spec, "cpu", torch.float32).train()
        for task_name, task in tasks.items():
            pool = Encoded.of(tokenizer, task.pool[:32], task.choices)
            examples = [(p[-200:], a) for p, a in zip(pool.prompts, pool.answers)]
            kept = seconds_per_step(model, examples, lambda m, e: answer_loss(m, e, 4096), args.steps)
            every = seconds_per_step(model, examples, full_logits_loss, args.steps)
            print(f"| {task_name} | {name} | {kept:.3f} | {every:.3f} | {every / kept:.1f}x |")


if __name__ == "__main__":
    main()
