"""Speculative decoding for real: each small model drafts for the target through transformers' assisted
generation, and what it measures is set beside what the challenge predicts from the same contexts.

    python3 -m benchmarks.speculative                          # the bundled suite, offline
    python3 -m benchmarks.speculative --json spec.json --report docs/speculative
    python3 -m benchmarks.speculative --models EleutherAI/pythia-70m EleutherAI/pythia-2.8b \\
        --device cuda --dtype bfloat16                          # Pythia (network, GPU)

The last of --models is the target, the others the drafters. Over --num-prefixes held-out prompts (the
Wikipedia test openings, data/prefixes/wikipedia-test.jsonl), --new-tokens tokens each:
- greedy: the target alone, then each drafter drafting --gamma tokens a round; the output must be the
  target's own, token for token (a correct verifier); accepted tokens per target pass and tokens/s;
- sampling: each drafter drafting for the target's speculative sampling; its measured acceptance rate;
- the same for `top2-average`, drafting from the two largest drafters at once (a `MixtureDrafter`);
- predicted: a dataset of every position of the target's own greedy text (and of its samples, for
  sampling), every model's distribution there, scored by the harness (`score_dataset`): top-1
  agreement and alpha give tokens per pass at --gamma, (1 - a^(g+1)) / (1 - a); the greedy replay
  (the same rounds on the measured per-position agreement, no i.i.d. assumption); and the speedup
  priced with c, each drafter's time per token over the target's, from their plain decoding here.
Everything is measured in one run, on one machine, one prompt at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

import harness.cli
from harness import InputError
from harness.data.files import check_writable, write_output
from harness.drafting.pricing import speedup
from harness.scoring.metrics import tokens_per_pass

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "data" / "prefixes" / "wikipedia-test.jsonl"
STRATEGY = "top2-average"  # the best heuristic, drafting from the two largest drafters at once


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=harness.cli.exit_codes(
            "every drafter reproduced the target's greedy output",
            "bad input (one line on stderr), or a drafter whose greedy output differs from the target's",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["suite"],
        help="drafters then the target (default: the "
        "bundled suite, `suite`: its six small models drafting for suite-1.5m)",
    )
    harness.cli.add_num_prefixes(parser, "held-out prompts (default: 24)", default=24)
    parser.add_argument("--prompt-file", type=Path, default=PROMPTS, help='a .jsonl of {"text": ...} prompts')
    parser.add_argument(
        "--new-tokens", type=harness.cli.at_least(2), default=64, help="tokens generated per prompt (default: 64)"
    )
    parser.add_argument(
        "--gamma", type=harness.cli.positive_int, default=4, help="tokens drafted per round (default: 4)"
    )
    harness.cli.add_device(parser)
    harness.cli.add_dtype(parser)
    harness.cli.add_seed(parser, "seeds sampling")
    harness.cli.add_json(parser, "write every measurement as JSON")
    harness.cli.add_report(parser, "draw predicted against measured into DIR")
    args = parser.parse_args(argv)
    from harness.models.suites import bundled_suite

    args.paths, args.labels = bundled_suite(args.models)
    if len(args.paths) < 2:
        parser.error("--models needs at least one drafter and the target")
    return args


def check_outputs(args: argparse.Namespace) -> None:
    """--json and --report are written after minutes of measuring: fail now if they cannot be."""
    if args.json is not None:
        check_writable(args.json)
    if args.report is not None:
        from harness.scoring.report import check_report_dir

        check_report_dir(args.report)


def read_prompts(path: Path, count: int) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    texts = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError, TypeError):
                raise InputError(f'{path}:{number}: expected a JSON object with "text"') from None
        if len(texts) == count:
            break
    return texts


def check_vocabularies(models: list, names: list[str]) -> int:
    """The vocabulary every model shares (its tokenizer's size); another size is a one-line error."""
    sizes = [model.get_output_embeddings().weight.shape[0] for model in models]
    if len(set(sizes)) > 1:
        raise InputError(
            f"{names[sizes.index(min(sizes))]} and {names[sizes.index(max(sizes))]} do not share one "
            f"vocabulary ({min(sizes)} vs {max(sizes)} output logits): a drafter must use the target's"
        )
    return sizes[0]


def predicted(models_probs: np.ndarray, names: list[str], decoded, seed: int) -> dict:
    """Score the continuation dataset with the harness: each drafter's top-1 agreement and alpha there,
    and `top2-average`'s."""
    from harness.data.dataset import save_dataset
    from harness.scoring.evaluate import Settings, score_dataset
    from harness.scoring.registry import REGISTRY
    from strategies import load_builtin

    load_builtin()

    sentences = [f"prompt {k} position {t}" for k, ids in enumerate(decoded.new_ids) for t in range(len(ids))]
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "continuations.pkl"
        save_dataset(path, names, sentences, models_probs)
        result = score_dataset(
            path, [REGISTRY[STRATEGY]] if len(names) > 2 else [], Settings(seed=seed, progress=False)
        )
    agree = result.view.input_top1 == result.view.target_top1[:, None]
    predictors = [(name, result.model_summaries[j], agree[:, j]) for j, name in enumerate(names[:-1])]
    predictors += [(row.name, row.summary, row.hits) for row in result.strategies]
    return {
        name: {
            "agreement": summary["top1"]["mean"],
            "agreement_ci95": summary["top1"]["ci95"],
            "alpha": summary["alpha"]["mean"],
            "alpha_ci95": summary["alpha"]["ci95"],
            "agree": hits,
        }
        for name, summary, hits in predictors
    }


def time_split(drafted, alone, cost: float, gamma: int) -> dict:
    """What a round costs, in units of the target's time per token decoding alone: as priced (gamma c + 1),
    as measured, and where the measured time goes: the target's verification pass, the drafter's gamma
    passes, and the rest (generate's own work per round, which Leviathan et al.'s cost model leaves out)."""
    unit = alone.seconds / alone.tokens
    rounds = max(1, drafted.target_passes)
    return {
        "round_priced": gamma * cost + 1,
        "round_measured": drafted.seconds / rounds / unit,
        "round": {
            "target": drafted.target_seconds / rounds / unit,
            "drafter": drafted.drafter_seconds / rounds / unit,
            "other": (drafted.seconds - drafted.target_seconds - drafted.drafter_seconds) / rounds / unit,
        },
        "alone": {
            "target": alone.target_seconds / alone.tokens / unit,
            "other": (alone.seconds - alone.target_seconds) / alone.tokens / unit,
        },
    }


class Setup(NamedTuple):
    """The models loaded, the prompts tokenized."""

    names: list[str]
    models: list  # drafters, then the target
    prompt_ids: list[list[int]]
    vocab_size: int
    device: str
    dtype: object  # a torch.dtype


def load(args: argparse.Namespace) -> Setup:
    """Check the device and the models' shared tokenizer, read the prompts, then load every model."""
    from harness.models.inference import load_model, resolve_dtype, shared_tokenizer, tokenize
    from harness.models.processes import check_device
    from harness.models.suites import ModelSpec

    device = check_device(args.device)
    specs = [ModelSpec(path, None, label) for path, label in zip(args.paths, args.labels)]
    names = [spec.stored_name for spec in specs]
    tokenizer = shared_tokenizer(specs)
    prompt_ids = tokenize(tokenizer, read_prompts(args.prompt_file, args.num_prefixes))
    dtype = resolve_dtype(args.dtype, device)
    models = [load_model(spec, device, dtype) for spec in specs]
    check_vocabularies(models, names)
    return Setup(names, models, prompt_ids, tokenizer.get_vocab_size(with_added_tokens=True), device, dtype)


def measure_drafter(
    setup: Setup, name: str, drafter, plain, greedy_pred: dict, sample_pred: dict, args: argparse.Namespace
) -> dict:
    """One drafter (or the mixture), measured beside the target alone: greedy and sampling, against
    what the harness predicted from the same contexts."""
    from harness.drafting.generation import decode, replay_tokens_per_pass

    target, ids, gamma, new = setup.models[-1], setup.prompt_ids, args.gamma, args.new_tokens
    # The target alone again, beside each drafter: a 2-core machine's speed drifts over minutes.
    plain_here = decode(target, ids, new)
    sampled_here = decode(target, ids, new, sample=True, seed=args.seed)
    alone = decode(drafter, ids, new)  # its own time per token: the cost c
    cost = plain_here.tokens_per_second / alone.tokens_per_second
    greedy = decode(target, ids, new, drafter=drafter, gamma=gamma)
    sampling = decode(target, ids, new, drafter=drafter, gamma=gamma, sample=True, seed=args.seed)
    g, s = greedy_pred[name], sample_pred[name]
    lengths = [len(row) for row in plain.new_ids]
    return {
        "drafter": name,
        "cost": cost,
        "drafter_tokens_per_second": alone.tokens_per_second,
        "greedy": {
            "identical_outputs": sum(a == b for a, b in zip(greedy.new_ids, plain.new_ids)),
            "prompts": len(ids),
            "measured_tokens_per_pass": greedy.tokens_per_pass,
            "predicted_tokens_per_pass": tokens_per_pass(g["agreement"], gamma),
            "replayed_tokens_per_pass": replay_tokens_per_pass(g["agree"], lengths, gamma),
            "agreement": g["agreement"],
            "agreement_ci95": g["agreement_ci95"],
            "measured_acceptance": greedy.acceptance(),
            "tokens_per_second": greedy.tokens_per_second,
            "target_tokens_per_second": plain_here.tokens_per_second,
            "measured_speedup": greedy.tokens_per_second / plain_here.tokens_per_second,
            "predicted_speedup": speedup(g["agreement"], gamma, cost),
            **time_split(greedy, plain_here, cost, gamma),
        },
        "sampling": {
            "measured_tokens_per_pass": sampling.tokens_per_pass,
            "predicted_tokens_per_pass": tokens_per_pass(s["alpha"], gamma),
            "measured_acceptance": sampling.acceptance(),
            "alpha": s["alpha"],
            "alpha_ci95": s["alpha_ci95"],
            "tokens_per_second": sampling.tokens_per_second,
            "target_tokens_per_second": sampled_here.tokens_per_second,
            "measured_speedup": sampling.tokens_per_second / sampled_here.tokens_per_second,
            "predicted_speedup": speedup(s["alpha"], gamma, cost),
            **time_split(sampling, sampled_here, cost, gamma),
        },
    }


def describe(row: dict) -> str:
    """A drafter's measurements on one line."""
    gr, sa = row["greedy"], row["sampling"]
    return (
        f"  {row['drafter']}: c {row['cost']:.2f}; greedy {gr['identical_outputs']}/{gr['prompts']} identical, "
        f"tokens/pass {gr['measured_tokens_per_pass']:.2f} measured, {gr['predicted_tokens_per_pass']:.2f} "
        f"predicted ({gr['replayed_tokens_per_pass']:.2f} replayed), speedup {gr['measured_speedup']:.2f}x "
        f"measured, {gr['predicted_speedup']:.2f}x priced; sampling acceptance {sa['measured_acceptance']:.3f} "
        f"measured, alpha {sa['alpha']:.3f}, speedup {sa['measured_speedup']:.2f}x measured, "
        f"{sa['predicted_speedup']:.2f}x priced; a greedy round costs {gr['round_measured']:.2f} target tokens' "
        f"time, priced at {gr['round_priced']:.2f}"
    )


def measure(setup: Setup, args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """The target alone (greedy and sampling), the harness's predictions from its own continuations,
    then every drafter and the mixture: the target's speeds and one row per drafter."""
    from harness.drafting.generation import MixtureDrafter, continuation_probs, decode

    target, drafters, names = setup.models[-1], setup.models[:-1], setup.names
    decode(target, setup.prompt_ids[:1], 4)  # warm-up: the first generate call pays one-off costs
    plain = decode(target, setup.prompt_ids, args.new_tokens)
    sampled = decode(target, setup.prompt_ids, args.new_tokens, sample=True, seed=args.seed)
    greedy_pred = predicted(continuation_probs(setup.models, plain, setup.vocab_size), names, plain, args.seed)
    sample_pred = predicted(continuation_probs(setup.models, sampled, setup.vocab_size), names, sampled, args.seed)
    print(f"  target alone: {plain.tokens_per_second:,.0f} tokens/s greedy, {sampled.tokens_per_second:,.0f} sampling")
    pairs = list(zip(names, drafters))
    if len(drafters) > 1:  # a strategy drafting from several models at once
        pairs.append((STRATEGY, MixtureDrafter(drafters[-2:]).eval()))
    rows = []
    for name, drafter in pairs:
        rows.append(measure_drafter(setup, name, drafter, plain, greedy_pred, sample_pred, args))
        print(describe(rows[-1]), flush=True)
    return {"greedy": plain.tokens_per_second, "sampling": sampled.tokens_per_second}, rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_outputs(args)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    # Assisted generation's own generate calls warn about arguments the benchmark sets on purpose.
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    setup = load(args)
    dtype = str(setup.dtype).removeprefix("torch.")
    print(
        f"{len(setup.prompt_ids)} prompts from {args.prompt_file.name}, {args.new_tokens} new tokens each, gamma "
        f"{args.gamma}, {setup.device} {dtype}, {torch.get_num_threads()} threads; target {setup.names[-1]}",
        flush=True,
    )
    started = time.perf_counter()
    target_speed, rows = measure(setup, args)
    seconds = time.perf_counter() - started
    print(f"  {seconds:.0f} s in all")
    out = {
        "models": setup.names,
        "target": setup.names[-1],
        "prompts": len(setup.prompt_ids),
        "new_tokens": args.new_tokens,
        "gamma": args.gamma,
        "device": setup.device,
        "dtype": dtype,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "seconds": seconds,
        "target_tokens_per_second": target_speed,
        "drafters": rows,
    }
    print("\n" + markdown_table(out))
    written = args.json is None or write_output(args.json, lambda f: f.write(json.dumps(out, indent=1) + "\n"))
    if args.report:
        draw(out, args.report)
    identical = all(row["greedy"]["identical_outputs"] == row["greedy"]["prompts"] for row in rows)
    return 0 if identical and written else 1


def markdown_table(out: dict) -> str:
    """The drafters side by side: predicted and measured, greedy and sampling."""
    lines = [
        f"| drafter (gamma {out['gamma']}) | c | identical | tokens/pass: predicted | replayed | measured | "
        "speedup: priced | measured | round: priced | measured | sampling: alpha | acceptance | "
        "speedup: priced | measured |",
        "|---" * 14 + "|",
    ]
    for row in out["drafters"]:
        g, s = row["greedy"], row["sampling"]
        lines.append(
            f"| {row['drafter']} | {row['cost']:.2f} | {g['identical_outputs']}/{g['prompts']} | "
            f"{g['predicted_tokens_per_pass']:.2f} | {g['replayed_tokens_per_pass']:.2f} | "
            f"{g['measured_tokens_per_pass']:.2f} | {g['predicted_speedup']:.2f}x | {g['measured_speedup']:.2f}x | "
            f"{g['round_priced']:.2f} | {g['round_measured']:.2f} | {s['alpha']:.3f} | "
            f"{s['measured_acceptance']:.3f} | {s['predicted_speedup']:.2f}x | {s['measured_speedup']:.2f}x |"
        )
    return "\n".join(lines)


def draw(out: dict, directory: Path) -> None:
    """speculative-measured.png: predicted against measured tokens per pass and speedup, per drafter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    rows = out["drafters"]
    labels = [row["drafter"] for row in rows]
    x = np.arange(len(rows))
    figure, axes = plt.subplots(1, 2, figsize=(12.4, 4.4))
    for ax, key, title in (
        (axes[0], "tokens_per_pass", "tokens per target pass"),
        (axes[1], "speedup", "wall-time speedup over the target alone"),
    ):
        for offset, mode, marker in ((-0.1, "greedy", "o"), (0.1, "sampling", "s")):
            ax.scatter(
                x + offset,
                [row[mode][f"predicted_{key}"] for row in rows],
                marker=marker,
                facecolors="none",
                edgecolors="C0" if mode == "greedy" else "C1",
                label=f"{mode}, predicted",
            )
            ax.scatter(
                x + offset,
                [row[mode][f"measured_{key}"] for row in rows],
                marker=marker,
                color="C0" if mode == "greedy" else "C1",
                label=f"{mode}, measured",
            )
        ax.set_xticks(x, labels, rotation=20, fontsize=8)
        ax.set_title(f"{title} (gamma {out['gamma']})", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[1].axhline(1, color="gray", linestyle=":", linewidth=1)
    figure.suptitle(
        f"drafting for {out['target']}: {out['prompts']} prompts x {out['new_tokens']} tokens, "
        f"{out['device']} {out['dtype']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(directory / "speculative-measured.png", dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    harness.cli.run(main)
