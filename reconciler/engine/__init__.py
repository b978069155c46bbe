"""The engine: load specs, plan (observe + pure plan per kind), apply under the lock."""
