"""Evaluation of LangDC checkpoints on the synthvid test split."""
