"""reconciler: a declarative GitOps reconciler (plan / apply / watch over YAML specs)."""

__version__ = "0.1.0"
