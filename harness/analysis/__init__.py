"""The analysis side: what runs on a laptop from results already computed, with numpy (and scipy)
and never torch. `emergence_law` (the law, its fit and bootstrap) and `forecast` (backtests and the
table) serve predict_emergence.py; `forecast_report` draws its pictures (matplotlib, imported only
when drawing).
"""
