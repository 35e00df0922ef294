"""The scoring side, numpy only: everything challenge.py and blind_test.py do on a laptop from files already computed.

- `registry`: what a strategy is (`register`, `learned`, `whole_array`), loading one from a file;
- `evaluate`: the engine: a dataset read chunk by chunk, strategies run (and fitted), typed results;
- `top1`: the target view (top-1s, emergent prefixes, float16 ties), checks of a strategy's output,
  top-1 scores; `metrics`: top-5, log-loss, KL, alpha, tokens per pass; `stats`: their bootstrap
  intervals and paired tests; `tasks`: task accuracy against scale; `learned`: training splits and folds;
- `leaderboard`: what challenge.py prints and writes; `report`: its pictures (matplotlib);
  `blind`: the blind test's files.
The forecast (harness/forecast) and drafting (harness/drafting) have folders of their own.
"""
