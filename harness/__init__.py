"""The challenge's library. Its one rule: scoring needs numpy only, models need torch.

    data/      what every side shares: the dataset file (dataset, safe_pickle, files), the prefixes
               and their answers (prefixes), tokenizers (tokenizer)
    scoring/   numpy, never torch: strategies run and scored on a laptop from a dataset file
               (registry, evaluate, top1, metrics, stats, tasks, learned, leaderboard, report, blind)
    models/    torch and transformers: which models a command names (suites), running them over
               prefixes (inference, resume_cache), accelerate's process group (processes)
    forecast/  predict_emergence.py, whole: the study's tasks, runs and results (study), the
               finetuning (finetune, torch), the emergence law (law), its fit and forecast (fit)
               and pictures (report); all but finetune numpy and scipy
    drafting/  speculative decoding: priced from the metrics (pricing, numpy), measured with
               assisted generation (generation, torch)
    cli.py     what every entry point does alike: one-line errors and warnings, exit codes

A change goes to one folder: the challenge's scoring to scoring/, the forecast to forecast/,
drafting to drafting/. The rule is on modules, whatever their folder: models/, forecast.finetune
and drafting.generation are the torch side; nothing else reaches torch, however deep, and data/
uses no other folder (tests/test_layout.py checks both, and that there is no import circle).
`challenge.py`, `blind_test.py`, `preprocess_train.py` and `predict_emergence.py` are the entry
points; nothing imports them.
"""


class InputError(Exception):
    """Bad input (a dataset, prefix file, model suite or flag): the message is one line naming it."""


def one_line(text: object) -> str:
    """`text` on one line: some of CPython's and numpy's messages hold newlines."""
    return " ".join(str(text).split())


def plural(count: int, one: str, many: str) -> str:
    """`one` or `many` as `count` asks: "1 prefix", "2 prefixes"."""
    return one if count == 1 else many
