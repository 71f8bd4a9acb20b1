"""The cpp backend: op modules embed.py and select.py (see docs/internals.md)."""
