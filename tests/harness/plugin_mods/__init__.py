"""Plug-in modules whose import misbehaves (tests/harness/test_plugin_import.py)."""
