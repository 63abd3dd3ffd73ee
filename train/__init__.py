"""LangDC's three-stage training recipe on HF `Trainer`, runnable with `accelerate launch`.

The stages follow the paper's method figure (arXiv 2509.00969); the official repository ships no training code.
"""
