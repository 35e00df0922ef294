"""The model side: torch and transformers. `suites` names the models a command asks for (Pythia, the
bundled suite, hub ids, local directories; torch-free, so that a bad name fails before torch loads);
`inference` runs a suite over prefixes into the float16 probability tensor, with `resume_cache`;
`finetune` finetunes a model on a task and scores it (predict_emergence.py's runs); `drafting`
decodes with a drafter and measures tokens per pass; `processes` joins accelerate's process group.
"""
