"""The library: the person's folders, kept indexed and searchable.

Holds the folders and their sync (:mod:`~engine.library.scanning`, the
:mod:`~engine.library.watching` subpackage), reading files
(:mod:`~engine.library.parsing`, :mod:`~engine.library.chunking`), the two
stores (:mod:`~engine.library.chunk_store`: SQLite, everything a person reads;
:mod:`~engine.library.vector_index`: USearch, keys and vectors only), the
writes (:mod:`~engine.library.indexing`, run on the engine's writer), hybrid
search (:mod:`~engine.library.retrieval`) and :class:`Library`, which
composes them. :mod:`~engine.library.read_only` searches a library another
process holds.

Imports: the shared engine modules (config, errors, progress, status, writer,
embedding, integrity, store_format, native) and itself; never the reader room,
learning or the facade (``tests/engine/test_layout.py`` checks).
"""

from __future__ import annotations

from engine.library.library import INDEX_FILE, MAX_SEARCH_LIMIT, STORE_FILE, Library

__all__ = ["INDEX_FILE", "MAX_SEARCH_LIMIT", "STORE_FILE", "Library"]
