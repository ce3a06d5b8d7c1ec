"""Benchmarks: scripts run as ``python3 bench/<name>/run.py`` (not tests)."""
