"""Format versions of saved stores: upgrade in place, or refuse with a readable prompt.

Every store Kenning saves records the format it was written in (SQLite files in
``PRAGMA user_version`` or a ``meta`` row, JSON and TOML files in a
``format_version`` key). On opening, :func:`reconcile_format` compares it with
the format this build writes:

- equal: nothing to do;
- older: each step in ``migrations`` (keyed by the version it upgrades *from*)
  runs in order, so a store from any earlier release reaches today's format; a
  missing step means the store cannot be upgraded and must be rebuilt;
- newer: a newer Kenning wrote it. It is never touched, so going back to that
  Kenning keeps the data.

The last two raise :class:`~engine.errors.StoreVersionError`, whose message says
what to do. Derived data (the vector index, the dequantized model cache) is
instead rebuilt silently from its source, so it never needs this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from engine.errors import StoreVersionError

Migration = Callable[[], None]


def reconcile_format(
    what: str,
    path: Path,
    found: int,
    supported: int,
    migrations: Mapping[int, Migration] | None = None,
) -> bool:
    """Upgrade a store from format ``found`` to ``supported``, or refuse.

    Args:
        what: What the store holds, for the message ("search index", "answer log").
        path: The store's file, for the message.
        found: The version on disk; 0 for a new, empty store.
        supported: The version this build writes.
        migrations: ``{from_version: step}``; each step upgrades by one version and
            runs in order. The caller records the new version after success.

    Returns:
        True when migration steps ran, False when the store was already current or new.

    Raises:
        StoreVersionError: the store is newer than this build, or older with no step.

    >>> steps = []
    >>> reconcile_format("log", Path("a.db"), 1, 3, {1: lambda: steps.append(1),
    ...                                               2: lambda: steps.append(2)})
    True
    >>> steps
    [1, 2]
    >>> reconcile_format("log", Path("a.db"), 0, 3)
    False
    >>> reconcile_format("log", Path("a.db"), 4, 3)
    Traceback (most recent call last):
    ...
    engine.errors.StoreVersionError: Your log (a.db) was saved by a newer version ...
    """
    if found == 0 or found == supported:
        return False
    if found > supported:
        raise StoreVersionError(path, what, found, supported)
    steps = migrations or {}
    if any(version not in steps for version in range(found, supported)):
        raise StoreVersionError(path, what, found, supported)
    for version in range(found, supported):
        steps[version]()
    return True
