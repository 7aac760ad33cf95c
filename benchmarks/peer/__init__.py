"""Helpers of the PyTorch-peer benchmark (``benchmarks/peer_torchunlearn.py``); see that script's docstring."""
