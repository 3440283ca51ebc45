"""Walking the library folder: what files are there, cheaply, safely.

Paths are handled as bytes from end to end, so a file whose name is not valid UTF-8 (a camera
card written by an old device, a Samba share) is indexed like any other instead of crashing the
walk. Symbolic links are followed (a library often links in other drives) but every directory is
visited at most once by (device, inode), which makes link loops harmless. Hidden entries and
anything matched by a `.shoeboxignore` file are skipped.

With a gate (daemon.library.gate) the walk never lists a folder outside the library: a folder, or
a link to one, that resolves outside the library and the allowed folders is not entered and is
reported in `errors` with the reason. A link to a file outside is reported as found with the
link's own size and time (never the target's), so the index job records why it was refused.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Iterator

from daemon.library.formats import Kind, kind_of
from daemon.library.gate import Gate

log = logging.getLogger(__name__)

IGNORE_FILE = b".shoeboxignore"


@dataclass(frozen=True)
class FoundFile:
    """A media or sidecar file seen by the walk."""

    rel: bytes  # path relative to the library root
    size: int
    mtime_ns: int
    inode: int
    kind: Kind


@dataclass
class WalkResult:
    files: list[FoundFile] = field(default_factory=list)
    ignored: int = 0
    errors: list[tuple[bytes, str]] = field(default_factory=list)  # unreadable folders
    loops: int = 0


@dataclass(frozen=True)
class IgnoreRule:
    """One `.shoeboxignore` pattern, relative to the folder holding the ignore file.

    Syntax (a small, predictable subset of .gitignore): one glob per line; `#` starts a comment;
    a pattern without `/` matches a name at any depth below; a pattern with `/` matches the path
    from the ignore file's folder; a trailing `/` matches folders only.
    """

    base: bytes
    pattern: str
    dir_only: bool
    anchored: bool

    def matches(self, rel: bytes, name: bytes, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.anchored:
            if self.base and not rel.startswith(self.base + b"/"):
                return False
            sub = rel[len(self.base) + 1:] if self.base else rel
            return fnmatch.fnmatchcase(os.fsdecode(sub), self.pattern)
        return fnmatch.fnmatchcase(os.fsdecode(name), self.pattern)


def parse_ignore_file(path: bytes, base: bytes) -> list[IgnoreRule]:
    rules = []
    try:
        with open(path, "rb") as fh:
            text = fh.read(256 * 1024).decode("utf-8", "replace")
    except OSError as exc:
        log.warning("cannot read %s: %s", os.fsdecode(path), exc)
        return rules
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        rules.append(IgnoreRule(base, line.lstrip("/"), dir_only, anchored))
    return rules


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel else name


def walk(root: bytes | str, *, follow_symlinks: bool = True, only: list[bytes] | None = None,
         gate: Gate | None = None) -> WalkResult:
    """Every media and sidecar file below root (or below the relative folders in `only`)."""
    root_b = os.fsencode(root)
    result = WalkResult()
    visited: set[tuple[int, int]] = set()
    starts = only if only is not None else [b""]
    for start in starts:
        rules = _rules_above(root_b, start)
        _walk_dir(root_b, start, rules, follow_symlinks, visited, result, gate)
    return result


def _rules_above(root: bytes, rel: bytes) -> list[IgnoreRule]:
    """Ignore rules from the folders above `rel` (for a walk that starts below the root)."""
    rules: list[IgnoreRule] = []
    parts = rel.split(b"/") if rel else []
    base = b""
    for depth in range(len(parts) + 1):
        candidate = os.path.join(root, base, IGNORE_FILE) if base else os.path.join(root, IGNORE_FILE)
        if os.path.isfile(candidate):
            rules += parse_ignore_file(candidate, base)
        if depth < len(parts):
            base = _join(base, parts[depth])
    return rules


def _walk_dir(root: bytes, rel: bytes, inherited: list[IgnoreRule], follow: bool,
              visited: set[tuple[int, int]], result: WalkResult, gate: Gate | None = None) -> None:
    stack: list[tuple[bytes, list[IgnoreRule]]] = [(rel, inherited)]
    while stack:
        rel_dir, rules = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        if gate is not None and rel_dir and (b".." in rel_dir.split(b"/") or not gate.allows_target(abs_dir)):
            result.errors.append((rel_dir, "a link to a folder outside the library, not followed"
                                           " (see [index] allowed_link_targets)"))
            continue
        try:
            st = os.stat(abs_dir)
        except OSError as exc:
            result.errors.append((rel_dir, exc.strerror or str(exc)))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            result.loops += 1
            continue
        visited.add(key)
        own = os.path.join(abs_dir, IGNORE_FILE)
        if rel_dir != rel:  # the start folder's own file was read by _rules_above
            if os.path.isfile(own):
                rules = rules + parse_ignore_file(own, rel_dir)
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            result.errors.append((rel_dir, exc.strerror or str(exc)))
            continue
        for entry in entries:
            name = entry.name
            if name.startswith(b"."):
                result.ignored += 1 if name != IGNORE_FILE else 0
                continue
            child = _join(rel_dir, name)
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=follow)
            except OSError:
                continue
            if is_link and not follow:
                continue
            if any(r.matches(child, name, is_dir) for r in rules):
                result.ignored += 1
                continue
            if is_dir:
                stack.append((child, rules))
                continue
            kind = kind_of(os.fsdecode(name))
            if kind is None:
                result.ignored += 1
                continue
            # a link that leaves the library: found (so the index job records why it is refused),
            # but described by the link itself, so nothing about its target reaches the index
            outside = is_link and gate is not None and not gate.allows_target(os.path.join(abs_dir, name))
            try:
                st_file = entry.stat(follow_symlinks=follow and not outside)
            except OSError as exc:
                result.errors.append((child, exc.strerror or str(exc)))
                continue
            if not stat.S_ISREG(st_file.st_mode) and not outside:
                continue
            result.files.append(FoundFile(child, st_file.st_size, st_file.st_mtime_ns, st_file.st_ino, kind))


def iter_parents(rel: bytes) -> Iterator[bytes]:
    """b"a/b/c.jpg" → b"a/b", b"a", b"" (the folders holding a file, nearest first)."""
    while rel:
        rel = rel.rpartition(b"/")[0]
        yield rel
