"""What the two sides share: files on disk and the questions asked. `study` holds an emergence
study's task data (test, validation and finetuning parts, disjoint) and its results file. No torch.
"""
