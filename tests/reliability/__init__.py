"""Reliability suites (issue 6): crashes, faults, concurrency, bad input, secrets.

Each runs in a short form inside `make test` and at full size under `make reliability`
(RECONCILER_RELIABILITY=full). Figures go to the report via `tests.reliability.report`.
"""
