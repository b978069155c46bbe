"""All git access: ref listing (dulwich), fetch and push (git CLI), the object cache."""

from reconciler.git.cache import ObjectCache
from reconciler.git.export import (
    TreeEntry,
    attributed,
    export_tree,
    peel_to_commit,
    shadowed,
    tree_entries,
)
from reconciler.git.process import GitRunner
from reconciler.git.push import RefOutcome, RefUpdate, push
from reconciler.git.refs import RefListing, list_refs
from reconciler.git.remotes import Remote

__all__ = [
    "GitRunner",
    "ObjectCache",
    "RefListing",
    "RefOutcome",
    "RefUpdate",
    "Remote",
    "TreeEntry",
    "attributed",
    "export_tree",
    "list_refs",
    "peel_to_commit",
    "push",
    "shadowed",
    "tree_entries",
]
