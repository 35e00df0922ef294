"""The model side: torch and transformers. `suites` names the models a command asks for (Pythia, the
bundled suite, hub ids, local directories; torch-free, so that a bad name fails before torch loads);
`inference` runs a suite over prefixes into the float16 probability tensor, with `resume_cache`;
`processes` joins accelerate's process group. Finetuning lives with the forecast
(harness/forecast/finetune), assisted generation with drafting (harness/drafting/generation).
"""
