"""Kinds of resources, one controller each, registered in `registry`."""
