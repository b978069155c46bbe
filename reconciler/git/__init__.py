"""All git access: ref listing (dulwich), fetch and push (git CLI), the object cache."""

from reconciler.git.cache import ObjectCache
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
    "list_refs",
    "push",
]
