"""LangDC's three-stage training recipe on HF `Trainer` (research/langdc.md §3), runnable with `accelerate launch`."""
