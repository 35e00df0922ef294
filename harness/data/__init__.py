"""What both sides share, no torch: the dataset file and its sidecar (`dataset`), loading a pickle
without running code (`safe_pickle`), atomic writes and user text files (`files`), the prefix sets
and their answers (`prefixes`), a model's tokenizer with the `tokenizers` package (`tokenizer`).
"""
