"""Versions stored by content: a large list (a taxonomy's terms) is cut into chunks at
content-defined boundaries, each chunk stored once under its digest, and a version keeps
only the list of its chunks' digests. A version that changes one item of 100,000 adds one
or two chunks (about 128 items each) and its manifest, not a copy of the whole.

A boundary follows every item whose canonical JSON has a CRC-32 ending in seven zero bits,
so an item added, removed or edited moves only the boundaries next to it. The version's
digest is that of the whole document's canonical JSON (as `Store.add_version` computes it),
so versions stored either way compare by digest. `Store.version` still reads a version
stored whole; `version_content` reads both kinds.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any

from reconciler.store.clock import now
from reconciler.store.database import dumps, loads
from reconciler.store.records import Store

_MASK = 127  # a boundary after 1 item in 128, on average
_CHUNKS = "$chunks"  # the key of a manifest: never a key of a stored document
_PLACEHOLDER = "\x00items\x00"
_BATCH = 500  # chunk digests per SELECT


def document_text(head: dict[str, Any], key: str, items: list[str]) -> str:
    """The canonical JSON (`dumps`) of `head` with `key` holding the items whose canonical
    JSON texts are `items`, assembled without encoding them again."""
    whole = dumps({**head, key: _PLACEHOLDER})
    return whole.replace(json.dumps(_PLACEHOLDER), "[" + ",".join(items) + "]", 1)


def digest_of(head: dict[str, Any], key: str, items: list[str]) -> str:
    """`sha256:` of the document's canonical JSON (equal to `canonical_digest(document)`)."""
    return "sha256:" + hashlib.sha256(document_text(head, key, items).encode()).hexdigest()


def add_chunked_version(
    store: Store,
    address: str,
    head: dict[str, Any],
    key: str,
    items: list[str],
    meta: dict[str, Any],
    digest: str | None = None,
    spans: list[tuple[str, int, int]] | None = None,
) -> int:
    """Keep `head` + `key: items` (items as canonical JSON texts) as the resource's next
    version, its list stored in shared chunks; return its number. Content equal to the
    latest version's is not stored again: its number is returned. `digest` and `spans`
    (`chunk_spans(items)`) may be given when known."""
    digest = digest or digest_of(head, key, items)
    spans = chunk_spans(items) if spans is None else spans
    chunks = [(chunk, ",".join(items[start:end])) for chunk, start, end in spans]
    manifest = {**head, _CHUNKS: {"key": key, "digests": [d for d, _ in chunks]}}
    with store.transaction():
        rows = store.query(
            "SELECT version, digest FROM versions WHERE address = ? ORDER BY version DESC LIMIT 1",
            (address,),
        )
        if rows and rows[0]["digest"] == digest:
            return int(rows[0]["version"])
        for chunk in chunks:
            store.execute("INSERT OR IGNORE INTO version_chunks(digest, data) VALUES (?, ?)", chunk)
        number = int(rows[0]["version"]) + 1 if rows else 1
        store.execute(
            "INSERT INTO versions(address, version, created_at, digest, content, meta) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (address, number, now(), digest, dumps(manifest), dumps(meta)),
        )
        store.bump_serial()
        return number


def chunk_spans(items: list[str]) -> list[tuple[str, int, int]]:
    """(digest, start, end) of each chunk the items are stored in: `items[start:end]`."""
    spans, start = [], 0
    for end, item in enumerate(items, 1):
        if zlib.crc32(item.encode()) & _MASK == 0 or end == len(items):
            data = ",".join(items[start:end])
            spans.append((hashlib.sha256(data.encode()).hexdigest(), start, end))
            start = end
    return spans


def version_digest(store: Store, address: str, number: int) -> str | None:
    """The digest of one version, without reading its content."""
    rows = store.query(
        "SELECT digest FROM versions WHERE address = ? AND version = ?", (address, number)
    )
    return str(rows[0]["digest"]) if rows else None


def version_content(store: Store, address: str, number: int) -> Any:
    """The content of one version, stored whole or in chunks; None if there is none."""
    content = version_manifest(store, address, number)
    if not isinstance(content, dict) or _CHUNKS not in content:
        return content
    listed = content.pop(_CHUNKS)
    found = chunk_texts(store, listed["digests"])
    content[listed["key"]] = json.loads("[" + ",".join(found[d] for d in listed["digests"]) + "]")
    return content


def version_manifest(store: Store, address: str, number: int) -> Any:
    """A version's content as stored: the document, or (stored in chunks) its head with
    `chunk_list` telling the list's key and its chunks; None if there is no such version."""
    rows = store.query(
        "SELECT content FROM versions WHERE address = ? AND version = ?", (address, number)
    )
    return loads(rows[0]["content"]) if rows else None


def chunk_list(manifest: Any) -> tuple[str, list[str]] | None:
    """(key, chunk digests) of a manifest from `version_manifest`; None: stored whole."""
    if not isinstance(manifest, dict) or _CHUNKS not in manifest:
        return None
    return manifest[_CHUNKS]["key"], list(manifest[_CHUNKS]["digests"])


def chunk_texts(store: Store, digests: list[str]) -> dict[str, str]:
    """The data of stored chunks (items' JSON joined by commas), by digest."""
    found: dict[str, str] = {}
    wanted = sorted(set(digests))
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        marks = ",".join("?" * len(batch))
        for row in store.query(
            f"SELECT digest, data FROM version_chunks WHERE digest IN ({marks})",
            tuple(batch),
        ):
            found[row["digest"]] = row["data"]
    return found
