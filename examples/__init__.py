"""Runnable examples; tests/test_examples.py runs each against the emulator."""
