"""Pieces of the sidestep benchmark harness (bench/bench.py): processes and /proc accounting,
load clients, server configs, and the report."""
