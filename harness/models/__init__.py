"""The model side: torch and transformers. `suites` names the models a command asks for (Pythia, the
bundled suite, hub ids, local directories; torch-free so that a bad name fails before torch loads);
`finetune` finetunes a model on a task, scores it and measures its pretraining loss (the runs of
predict_emergence.py).
"""
