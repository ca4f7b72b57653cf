"""Readers and their subscriptions, one module per job.

- `signup`: the public lifecycle: subscribe, confirm, unsubscribe, resubscribe, preferences.
- `actions`: what editors (and returned mail) do to readers: add, suppress, unsubscribe.
- `privacy`: a reader's personal data: export, erasure, purging unconfirmed signups.
- `csv_io`: subscribers in and out as CSV, streaming both ways.
- `imports`: CSV import jobs from the workspace (their runner is digest.engine.imports).
"""
