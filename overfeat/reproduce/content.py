"""What a network is, by content: the sha256 of every file it is read from.

A finished row, a finished bar or a detection run is reused only when its networks are byte for
byte the ones it ran with. Paths and sizes cannot say that: the released weight files always
have the same size, and a checkpoint can be rewritten in place. So every cache key of a
reproduction is built from the sha256 of the files behind each network (a released weight file
and the devkit meta that orders its outputs, a training checkpoint).

Hashing the 580 MB of a released network takes seconds; doing it on every invocation of a
50,000-image run would be waste. :class:`FileHashes` remembers each file's digest in a small
JSON file (``<cache>/sha256.json``) under the file's resolved path with its inode, size,
modification and change times; any of these changing hashes the file again.

Decision CONTENT_KEYS: a remembered digest is trusted while (path, inode, size, mtime_ns,
ctime_ns) are unchanged. The change time is in the tuple because a copy that keeps the old
modification time (``cp -p``, ``touch -r``) still moves it, and no program can set it back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileHashes", "combined_digest", "network_identity"]

CHUNK = 8 << 20  # bytes read per update: large enough that the hash, not the calls, dominates


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class FileHashes:
    """sha256 of files, remembered in ``memo`` (a JSON file; ``None``: remembered in this
    object only) by (path, inode, size, mtime_ns, ctime_ns)."""

    def __init__(self, memo: str | Path | None = None):
        self.memo = Path(memo) if memo is not None else None
        self._known: dict[str, dict] = {}
        if self.memo is not None and self.memo.is_file():
            try:
                self._known = json.loads(self.memo.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._known = {}  # a damaged memo only costs hashing again

    def sha256(self, path: str | Path) -> str:
        """The file's sha256 (hex), hashed only when the file changed since it was remembered."""
        path = Path(path).resolve()
        stamp = _stamp(path.stat())
        known = self._known.get(str(path))
        if known is not None and known.get("stamp") == stamp:
            return known["sha256"]
        digest = _hash_file(path)
        # The file may have changed while it was read: remember the digest only under the stamp
        # it still has afterwards, else next time hashes it again.
        if _stamp(path.stat()) == stamp:
            self._known[str(path)] = {"stamp": stamp, "sha256": digest}
            self._save()
        return digest

    def digests(self, paths: Iterable[str | Path]) -> dict[str, str]:
        """``{resolved path: sha256}`` of ``paths``, in the order given."""
        return {str(Path(p).resolve()): self.sha256(p) for p in paths}

    def _save(self) -> None:
        if self.memo is None:
            return
        self.memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.memo.with_name(f"{self.memo.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._known, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.memo)  # another run writing at once loses entries, never a file


def combined_digest(digests: dict[str, str]) -> str:
    """One digest for a network read from several files: their contents in the order given,
    without their paths (a moved or renamed copy is the same network)."""
    return "sha256:" + hashlib.sha256("\n".join(digests.values()).encode()).hexdigest()


def network_identity(ref, hashes: FileHashes) -> tuple[str, dict[str, str]]:
    """A :class:`~overfeat.network_sources.NetworkRef`'s identity in a cache → ``(identity,
    {file: sha256})``: the combined sha256 of its files (decision CONTENT_KEYS) through
    ``hashes``; a network given without files (built in memory, or keyed by its content already)
    is its ``key``."""
    if not ref.files:
        return ref.key, {}
    digests = hashes.digests(ref.files)
    return combined_digest(digests), digests
