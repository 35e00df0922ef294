"""The scoring side, numpy only (scipy for the emergence law): everything challenge.py, blind_test.py
and predict_emergence.py's forecast do on a laptop from files already computed.

- `registry`: what a strategy is (`register`, `learned`, `whole_array`), loading one from a file;
- `evaluate`: the engine: a dataset read chunk by chunk, strategies run (and fitted), typed results;
- `top1`: the target view (top-1s, emergent prefixes, float16 ties), checks of a strategy's output,
  top-1 scores; `metrics`: top-5, log-loss, KL, alpha, tokens per pass; `stats`: their bootstrap
  intervals and paired tests; `tasks`: task accuracy against scale; `learned`: training splits and folds;
- `leaderboard`: what challenge.py prints and writes; `report`: its pictures (matplotlib);
  `blind`: the blind test's files;
- `emergence_law`, `forecast`, `forecast_report`: predict_emergence.py's law, forecast and pictures;
  `drafting`: speculative decoding priced from the metrics.
"""
