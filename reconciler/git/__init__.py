"""All git access: ref listing (dulwich), fetch and push (git CLI), the object cache."""

from reconciler.git.cache import ObjectCache
from reconciler.git.export import export_tree, peel_to_commit, tree_blobs
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
    "export_tree",
    "list_refs",
    "peel_to_commit",
    "push",
    "tree_blobs",
]
