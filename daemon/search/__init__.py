"""The search language: parse a query, compile it to parameterised SQL, run it a page at a time.

    from daemon.search import search
    page = search(conn, 'label:cat country:it -mono:yes "at the beach"', order="newest", limit=60)
    more = search(conn, same_q, cursor=page.next_cursor)

The full-text index (photos_fts, migration 0003) is kept current by triggers; nothing else needs
calling when photos, files, labels, faces or people change.
"""

from daemon.search.compiler import ORDERS, Compiled, Viewer, compile
from daemon.search.engine import FACETS, SearchPage, facet_counts, search, within_budget
from daemon.search.errors import QueryTooExpensive, SearchError
from daemon.search.filters import ALIASES, FILTERS
from daemon.search.fts import rebuild_search_index, verify_search_index
from daemon.search.functions import register_functions
from daemon.search.parser import MAX_QUERY_CHARS, Filter, Query, Term, Text, parse

__all__ = [
    "ALIASES", "Compiled", "FACETS", "FILTERS", "Filter", "MAX_QUERY_CHARS", "ORDERS", "Query", "QueryTooExpensive", "SearchError",
    "SearchPage", "Term", "Text", "Viewer", "compile", "facet_counts", "parse", "rebuild_search_index",
    "register_functions", "search", "verify_search_index", "within_budget",
]
