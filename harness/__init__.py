"""Shared code of the challenge: dataset I/O, prefix building, inference and scoring.

`challenge.py` and `preprocess_train.py` are the entry points; each concept lives in exactly
one module here:

- `dataset_io`: the pickle format (safe loading, validation, atomic writing) and its JSON sidecar;
- `prefixes`: the prefix sets (Wikipedia openings, GLUE RTE prompts, a user's .txt/.jsonl);
- `inference`: running a model suite over prefixes into a float16 probability tensor (torch);
- `scoring`: top-1 agreement, bootstrap intervals and strategy-output checks (numpy only);
- `blind`: the blind test's public file, private answers and predictions CSVs (numpy only);
- `report`: the pictures of `challenge.py --report` (matplotlib, imported only when drawing).
"""


class InputError(Exception):
    """Bad input (a dataset, prefix file, model suite or flag): the message is one line naming it."""
