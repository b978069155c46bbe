"""Watch mode: triggers, the listener and its metrics, the continuous reconcile loop."""
