"""Benchmarks of reconciler against plain git baselines, measured side by side.

Run `python -m bench` (or `make bench`) from the project root; see bench/__main__.py.
Each module (noop_plan, incremental_sync, initial_mirror) builds fresh local data in a
temporary directory and reports the median ratio reconciler / baseline.
"""
