"""Speculative decoding: `pricing` (the speedup a drafter buys, from the challenge's metrics; numpy,
used by the leaderboard) and `generation` (assisted generation with a drafter, measured; torch,
used by benchmarks.speculative).
"""
