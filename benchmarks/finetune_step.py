"""One finetuning step of predict_emergence.py, timed side by side in one process: the output head
on the answer positions only (`harness.forecast.finetune.answer_loss`, left padding and
`logits_to_keep`) against the head on every position (right padding, the loss masked to the
answer), on the bundled suite's models, for 2-digit addition and 2-shot RTE prompts.

    python3 -m benchmarks.finetune_step [--steps 5] [--rte ../shared/data/corpus/rte-train.tsv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import harness.cli
from harness.forecast.study import arithmetic_task, builder_task

if TYPE_CHECKING:  # torch loads once the command line is read
    import torch

ROOT = Path(__file__).resolve().parents[1]


def full_logits_loss(model: torch.nn.Module, examples: list[tuple[list[int], list[int]]]) -> torch.Tensor:
    """The head on every position, right-padded; targets -100 except the answer's tokens."""
    import torch

    rows = [torch.tensor(p + a) for p, a in examples]
    targets = [torch.tensor([-100] * len(p) + a)[1:].tolist() + [-100] for p, a in examples]
    pad = lambda seqs, value: torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=value)
    mask = pad([torch.ones(len(r), dtype=torch.long) for r in rows], 0)
    logits = model(input_ids=pad(rows, 0), attention_mask=mask, use_cache=False).logits
    return torch.nn.functional.cross_entropy(
        logits.float().transpose(1, 2), pad([torch.tensor(t) for t in targets], -100), ignore_index=-100
    )


def seconds_per_step(model, examples, loss_fn, steps: int) -> float:
    loss_fn(model, examples).backward()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        model.zero_grad(set_to_none=True)
        loss_fn(model, examples).backward()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=harness.cli.positive_int, default=5, help="timed steps per case (default: 5)")
    parser.add_argument(
        "--rte",
        default=str(ROOT.parent / "shared/data/corpus/rte-train.tsv"),
        help="a GLUE RTE TSV for the 2-shot RTE case (skipped where it is missing)",
    )
    args = parser.parse_args(argv)
    import torch
    import transformers

    from harness.forecast.finetune import Encoded, answer_loss
    from harness.models.inference import load_model, shared_tokenizer
    from harness.models.suites import ModelSpec

    transformers.utils.logging.disable_progress_bar()
    tasks = {"2-digit addition": arithmetic_task(2, test_size=10, validation_size=10)}
    if Path(args.rte).exists():
        tasks["2-shot RTE"] = builder_task("glue-rte", 10, 10, dataset_path=args.rte, shots=2)
    print(
        "| task | model | answer positions only (s/step) | every position (s/step) | speedup |\n|---|---|---:|---:|---:|"
    )
    for name in ("suite-0.34m", "suite-1.5m"):
        spec = ModelSpec(str(ROOT / "suite" / "models" / name))
        tokenizer = shared_tokenizer([spec])
        model = load_model(spec, "cpu", torch.float32).train()
        for task_name, task in tasks.items():
            pool = Encoded.of(tokenizer, task.pool[:32], task.choices)
            examples = [(p[-200:], a) for p, a in zip(pool.prompts, pool.answers)]
            kept = seconds_per_step(model, examples, lambda m, e: answer_loss(m, e, 4096), args.steps)
            every = seconds_per_step(model, examples, full_logits_loss, args.steps)
            print(f"| {task_name} | {name} | {kept:.3f} | {every:.3f} | {every / kept:.1f}x |")
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
