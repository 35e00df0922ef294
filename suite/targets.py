"""The bundled suite's targets (issue 17), measured: does an ability emerge, and does the suite still
scale?

    python3 -m suite.targets        # after suite/rebuild.sh (or build_splits.sh): writes suite/targets.md

- held-out 2-digit addition, 0-shot, lm-evaluation-harness's format (data/arithmetic.pkl, whose
  pairs the training text never states): the smallest model at most 5%, the largest at least 50%,
  Spearman's rho of accuracy against size at least 0.8;
- validation loss falls strictly with size (suite/suite.json);
- Wikipedia test-split agreement with the target rises with size, rho >= 0.9;
- and, for the record, the noise ceiling: the target's other seed's agreement with it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import harness.cli
from harness.data.dataset import load_dataset, model_sizes, read_sidecar, sidecar_answer_scores
from suite.agreement_vs_size import agreement, spearman

ROOT = Path(__file__).resolve().parents[1]


def arithmetic_curve(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(model names, sizes, held-out accuracy) of every model, the target last."""
    dataset = load_dataset(path)
    metadata = read_sidecar(path, verify_hash=False)
    scores = sidecar_answer_scores(dataset, metadata)
    if scores is None:
        raise SystemExit(f"{path}: no answer scores in its sidecar: rebuild it with suite/rebuild.sh")
    sizes = model_sizes(dataset.model_names, metadata)
    return (
        dataset.model_names,
        np.array([sizes[m]["non_embedding_params"] for m in dataset.model_names]),
        scores.correct.mean(axis=1),
    )


def supplementary_curves(models: list[Path], count: int = 200) -> dict[str, list[float]]:
    """Greedy accuracy of each model on addition beyond the held-out set: 2-digit pairs the worksheets
    do state (seen), and every 1-digit sum (most of them seen): is the skill learned at all?"""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    from harness.data.tokenizer import load_tokenizer
    from harness.models.inference import answer_logprobs, tokenize
    from suite.arithmetic import addition_questions, held_out_pairs

    held, rng = held_out_pairs(), np.random.default_rng(0)
    seen = [p for p in ((int(a), int(b)) for a, b in rng.integers(10, 100, (4 * count, 2))) if p not in held][:count]
    sets = {
        "seen 2-digit addition": addition_questions(seen),
        "1-digit addition (all 100 sums)": addition_questions([(a, b) for a in range(10) for b in range(10)]),
    }
    tokenizer = load_tokenizer(str(models[0]))
    curves = {name: [] for name in sets}
    logging.disable_progress_bar()  # a bar per model load would bury the table
    for folder in models:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        for name, questions in sets.items():
            prefixes = tokenize(tokenizer, [q["text"] for q in questions])
            answers = tokenize(tokenizer, [q["answer"] for q in questions], special_tokens=False)
            curves[name].append(float(answer_logprobs(model, prefixes, answers, tokenizer.get_vocab_size())[1].mean()))
    return curves


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)  # no options; --help
    names, sizes, accuracy = arithmetic_curve(ROOT / "data" / "arithmetic.pkl")
    # Spearman's rho is undefined when every model scores the same (e.g. 0%): nan, said so.
    rho_arithmetic = spearman(sizes, accuracy) if np.ptp(accuracy) > 0 else float("nan")
    suite = json.loads((ROOT / "suite" / "suite.json").read_text())
    losses = [m["val_loss"] for m in suite["models"]]
    wikipedia = agreement(ROOT / "data" / "wikipedia-test.pkl")
    agree = wikipedia["agreement"]
    rho_wiki = spearman(np.array(wikipedia["sizes"]), np.array(agree))
    rows = [
        ("held-out 2-digit addition, smallest model", f"{accuracy[0]:.1%}", "<= 5%", accuracy[0] <= 0.05),
        ("held-out 2-digit addition, largest model (the target)", f"{accuracy[-1]:.1%}", ">= 50%", accuracy[-1] >= 0.5),
        (
            "held-out 2-digit addition, Spearman rho against size",
            f"{rho_arithmetic:.2f}" if rho_arithmetic == rho_arithmetic else "undefined (all equal)",
            ">= 0.8",
            rho_arithmetic >= 0.8,
        ),
        (
            "validation loss falls strictly with size",
            " > ".join(f"{x:.3f}" for x in losses),
            "strictly",
            all(b < a for a, b in zip(losses, losses[1:])),
        ),
        ("wikipedia-test agreement with the target, Spearman rho", f"{rho_wiki:.2f}", ">= 0.9", rho_wiki >= 0.9),
    ]
    lines = [
        "# Suite targets, measured",
        "",
        "Measured by `python3 -m suite.targets` on the committed suite and data.",
        "",
        "| target | measured | required | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {what} | {measured} | {required} | {'yes' if ok else 'no'} |" for what, measured, required, ok in rows
    ]
    lines += [
        "",
        "Held-out 2-digit addition accuracy (greedy decoding writes the sum), smallest first: "
        + ", ".join(f"{Path(n).name} {a:.1%}" for n, a in zip(names, accuracy))
        + ".",
    ]
    models = sorted(
        (ROOT / "suite" / "models").glob("suite-*/"), key=lambda d: (d / "model.safetensors").stat().st_size
    )
    for name, curve in supplementary_curves(models).items():
        lines += [
            "",
            f"{name[0].upper() + name[1:]}, the same way: "
            + ", ".join(f"{d.name} {a:.1%}" for d, a in zip(models, curve))
            + ".",
        ]
    lines += [
        "",
        "Wikipedia-test agreement with the target, smallest first: " + ", ".join(f"{a:.1%}" for a in agree) + ".",
    ]
    if wikipedia["noise_ceiling"] is not None:
        lines += [
            "",
            f"Noise ceiling: {Path(wikipedia['noise_ceiling_model']).name}, another seed of the target, "
            f"agrees with it on {wikipedia['noise_ceiling']:.1%} of the Wikipedia test prefixes.",
        ]
    (ROOT / "suite" / "targets.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    harness.cli.run(main)
