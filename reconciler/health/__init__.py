"""Health: policies and their checks, self-healing, alerts (above the engine, below watch)."""
