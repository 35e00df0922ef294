"""The forecast, whole (predict_emergence.py): `study` (the tasks' data, the planned runs, the results
file, learning-rate selection), `finetune` (the runs, torch), `law` (the emergence law and its fit,
scipy), `fit` (the forecast from a study's results), `report` (its pictures). Everything but
`finetune` is torch-free, so `--from-results` refits on a laptop.
"""
