"""Vigie for Python: the field records of child-labour monitoring, in an encrypted store that
syncs with a hub.

Everything from the generated bindings is re-exported here (``vigie._ffi.vigie_core``: the
records, enums, queries and summaries; ``vigie._ffi.vigie``: the objects and calls): ``open_store``,
``VigieStore``, ``open_vault`` and ``Vault`` (several users on one device), the records
(``Workplace``, ``Visit``, ``ChildCase``, ...), ``VigieError``, ``builtin_reference`` and the
``new_*`` helpers. This package adds:

- ``with open_store(...) as store:`` closes the file at the end of the block;
- the ``*_pages`` walks (``store.child_case_pages(query)``, ...) are iterable over their rows,
  one page read at a time;
- ``HubTransport``: sync with a hub over HTTP with the standard library;
- ``str(error)`` of a ``VigieError`` is its sentence ("invalid started_at: must be an RFC 3339
  instant with an offset"), as in Kotlin and Swift.

Every ``VigieStore`` method blocks on SQLite (``sync_with`` for the whole session). Ids and dates
are strings (UUIDs; ``YYYY-MM-DD``; RFC 3339 instants with an offset).
"""

from ._ffi.vigie_core import *  # noqa: F401,F403
from ._ffi.vigie_core import __all__ as _core
from ._ffi.vigie import *  # noqa: F401,F403
from ._ffi.vigie import __all__ as _calls
from ._ffi.vigie import VigieStore as _VigieStore
from ._ffi.vigie import AlertPages, ChildCasePages, DuePages, VisitPages, WorkplacePages
from .hub import HubTransport


def _enter(self):
    return self


def _exit(self, *_exc):
    self.close_store()
    return False


def _rows(self):
    while page := self.next():
        yield from page


def _error_text(self):
    return self.text()


_VigieStore.__enter__ = _enter
_VigieStore.__exit__ = _exit
for _pages in (AlertPages, ChildCasePages, DuePages, VisitPages, WorkplacePages):
    _pages.__iter__ = _rows
# The generated classes print their fields (``reason='...'``): the Rust text reads as a sentence.
for _variant in vars(VigieError).values():  # noqa: F405 (from the generated module)
    if isinstance(_variant, type) and issubclass(_variant, Exception):
        _variant.__str__ = _error_text

__all__ = [*_core, *_calls, "HubTransport"]
