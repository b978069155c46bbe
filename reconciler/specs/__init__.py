"""Loading and validating desired-state specs (YAML documents) into Resources."""

from reconciler.specs.envelope import Resource, SpecSet
from reconciler.specs.loading import load_directory, spec_digest

__all__ = ["Resource", "SpecSet", "load_directory", "spec_digest"]
