"""What the integration tests share: the sample library indexed once per test session.

Indexing the five sample photos (tests.integration.api_support.SAMPLE_PHOTOS) with the real indexer
takes several seconds on a Raspberry Pi-class machine; when every module did it from scratch that
was over a minute of `make test`. Now it happens once:

- `indexed` is that library, (library, data), **read-only**: a test may read its files and query its
  database, but never start an App or a daemon on it, add a user, edit a photo or touch a file.
  At the end of the session the library is checked unchanged, so a test that breaks the rule fails
  the run instead of silently feeding its changes to the next test.
- `copy` is a private clone of it for one test (~0.1 s): take it whenever the test changes anything.

Waiting: there is exactly one way, `tests.waiting.wait_until` (and `wait_until_async` inside an
event loop). Poll for what you expect with a deadline; never `time.sleep` for it.

tests/security/conftest.py offers the same two fixtures; both share the one indexed library.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.api_support import build_indexed, clone

# The session's indexed library, kept on the pytest config so that every conftest that offers the
# `indexed` fixture (integration and security) hands out the same one.
_INDEXED = pytest.StashKey[tuple[Path, Path]]()


def _fingerprint(library: Path, data: Path) -> dict[str, str]:
    """What a test could change: every library file's content and the database's rows."""
    out = {str(p.relative_to(library)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(library.rglob("*")) if p.is_file()}
    with sqlite3.connect(f"file:{data / 'shoebox.db'}?mode=ro", uri=True) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            out[f"table {table}"] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    return out


@pytest.fixture(scope="session")
def indexed(samples: Path, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[tuple[Path, Path]]:
    """The sample photos indexed once for the whole session: (library, data). Read-only."""
    stash = request.config.stash
    if _INDEXED in stash:  # already built by the other conftest's fixture of the same name
        yield stash[_INDEXED]
        return
    built = build_indexed(samples, tmp_path_factory.mktemp("indexed"))
    stash[_INDEXED] = built
    before = _fingerprint(*built)
    yield built
    changed = sorted(k for k, v in _fingerprint(*built).items() if before.get(k) != v)
    changed += sorted(set(before) - set(_fingerprint(*built)))
    assert not changed, (f"a test changed the shared read-only library ({', '.join(changed[:10])}): "
                         "use the `copy` fixture in tests that change anything")


@pytest.fixture
def copy(indexed: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private clone of the indexed sample library for one test that changes things."""
    return clone(indexed, tmp_path)
