"""Vigie for Python: the field records of child-labour monitoring, in an encrypted store that
syncs with a hub.

Everything from the generated bindings (``vigie._ffi``) is re-exported here: ``open_store``,
``VigieStore``, ``open_vault`` and ``Vault`` (several users on one device), the records
(``Workplace``, ``Visit``, ``ChildCase``, ...), ``VigieError``, ``builtin_reference`` and the
``new_*`` helpers. This package adds:

- ``with open_store(...) as store:`` closes the file at the end of the block;
- ``HubTransport``: sync with a hub over HTTP with the standard library.

Every ``VigieStore`` method blocks on SQLite (``sync_with`` for the whole session). Ids and dates
are strings (UUIDs; ``YYYY-MM-DD``; RFC 3339 instants with an offset).
"""

from ._ffi.vigie import *  # noqa: F401,F403
from ._ffi.vigie import __all__ as _generated
from ._ffi.vigie import VigieStore as _VigieStore
from .hub import HubTransport


def _enter(self):
    return self


def _exit(self, *_exc):
    self.close_store()
    return False


_VigieStore.__enter__ = _enter
_VigieStore.__exit__ = _exit

__all__ = [*_generated, "HubTransport"]
