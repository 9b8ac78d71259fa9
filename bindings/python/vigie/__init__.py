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

Every ``VigieStore`` method blocks on SQLite (``sync_with`` for the whole session, holding the
store only for each of its steps: other threads' calls wait for one step at most). Ids and dates
are strings (UUIDs; ``YYYY-MM-DD``; RFC 3339 instants with an offset).
"""

import _thread
import difflib
import functools
import inspect
import threading
import typing
import uuid
from collections.abc import Collection, Mapping

from ._ffi.vigie_core import *  # noqa: F401,F403
from ._ffi.vigie_core import __all__ as _core
from ._ffi.vigie import *  # noqa: F401,F403
from ._ffi.vigie import __all__ as _calls
from ._ffi.vigie import VigieStore as _VigieStore
from ._ffi.vigie import AlertPages, ChildCasePages, DuePages, VisitPages, WorkplacePages
from ._ffi import vigie as _ffi_calls
from ._ffi import vigie_core as _ffi_core
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

def _generated_records():
    """The generated records: dataclasses whose fields are set in ``__init__`` only."""
    for module in (_ffi_core, _ffi_calls):
        for name in module.__all__:
            record = getattr(module, name)
            if (
                isinstance(record, type)
                and hasattr(record, "__dataclass_fields__")
                and not issubclass(record, BaseException)
            ):
                yield record


# The dataclass ``repr`` shows none of a generated record's fields (``RefusedRecord()``): a
# printed ``SyncSummary`` hid which records were refused and why. Their ``repr`` is their
# ``str``, which names every field.
for _class in _generated_records():
    if not _class.__dataclass_fields__ and "__str__" in vars(_class):
        _class.__repr__ = _class.__str__

def _generated_variants():
    """The variants of the generated enums that carry values (``FieldValue.TEXT``), each a
    class of its own."""
    for module in (_ffi_core, _ffi_calls):
        for name in module.__all__:
            enum = getattr(module, name)
            if not isinstance(enum, type) or issubclass(enum, BaseException):
                continue
            for variant in list(vars(enum).values()):
                if isinstance(variant, type) and variant is not enum and issubclass(variant, enum):
                    yield variant


# Variants of enums that carry values (``FieldValue.TEXT``, ``AreaFilter.COMMUNITY``) print as
# ``FieldValue.TEXT()`` too: the values of a conflict did not show. The same fix.
for _variant in _generated_variants():
    if _variant.__str__ is not object.__str__:
        _variant.__repr__ = _variant.__str__



# A value of the wrong type where an enum belongs (a child's name typed into ``school``) was
# refused by the generated code as ``ValueError(value)``: the value itself went into the message,
# and so into crash reports, and no field was named. The refusal names the field (its path in
# nested records) and the type expected; the exception keeps nothing of the value, not even a
# reference to it (an ``id()`` while the call runs).
def _mentions(annotation, expected):
    return annotation is expected or typing.get_origin(annotation) is expected or any(
        _mentions(inner, expected) for inner in typing.get_args(annotation)
    )


@functools.cache
def _field_types(record_type):
    """A generated record's fields and their types (its annotations are strings)."""
    try:
        return typing.get_type_hints(record_type.__init__)
    except (NameError, TypeError):
        return {}


class WrongType(ValueError):
    """A value of the wrong type for its field (a ``ValueError``): names the field and the type
    expected, never the value."""

    def __init__(self, expected, type_name, inner, path=(), direct=True, said=None):
        where = ".".join(path)
        self._said = said
        said = said or (
            f"expected {_a(expected.__name__)}, not {_a(type_name)}"
            if type_name is not None
            # The right type, holding a value of the wrong type (FieldValue.INTEGER("12")).
            else f"{_a(expected.__name__)} holding a value of the wrong type or out of range"
        )
        super().__init__(f"{where + ': ' if where else ''}{said}")
        self._expected = expected
        self._type_name = type_name
        self._inner = inner  # id() of the refused value, then of the record that holds it
        self._direct = direct
        self._path = path

    def inside(self, record):
        """The same refusal, its path starting at the field of ``record`` that holds it."""
        if not hasattr(record, "__dataclass_fields__"):
            return self
        types = _field_types(type(record))
        for name, held in vars(record).items():
            # A value shared with another field ("" is every empty string): the field whose
            # type is the one expected.
            if self._direct and not _mentions(types.get(name), self._expected):
                continue
            # None is every absent value: not refused in a field that may be absent.
            if held is None and _mentions(types.get(name), type(None)):
                continue
            found = None
            if id(held) == self._inner:
                found = (name,)
            elif isinstance(held, dict):
                key = next((k for k, v in held.items() if id(v) == self._inner), None)
                found = None if key is None else (name, _key_of(key))
            elif isinstance(held, (list, tuple)) and any(id(x) == self._inner for x in held):
                found = (name,)
            if found:
                return WrongType(
                    self._expected,
                    self._type_name,
                    id(record),
                    (*found, *self._path),
                    False,
                    self._said,
                )
        return self


def _a(name):
    """A type's name after its article: "an Area", "a str"."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _key_of(key):
    """A map's key in a path: the id it should be, never other text (a name typed as a key)."""
    try:
        return str(uuid.UUID(str(key)))
    except ValueError:
        return "<key>"


def _naming_the_field(converter, expected):
    check = converter.check_lower

    def check_lower(value):
        refusal = None
        try:
            check(value)
        except WrongType as refused:
            refusal = refused.inside(value)
        except (ValueError, TypeError, AttributeError):
            if not isinstance(expected, type):
                raise
            # A bool is an int to Python, and no number here.
            fits = isinstance(value, expected) and (
                expected is bool or not isinstance(value, bool)
            )
            held = None if fits else type(value).__name__
            refusal = WrongType(expected, held, id(value))
        if refusal is not None:
            # Raised here, out of the handler: the generated code's exception, which holds the
            # value, is not its context.
            raise refusal

    converter.check_lower = staticmethod(check_lower)


# A str UTF-8 cannot write (a lone surrogate: an emoji cut in half by a text box) was refused by
# the generated encoder as a ``UnicodeEncodeError``, which holds the whole text (a child's name,
# a PIN: crash reports keep it) and names no field. Refused before it, as a value of the wrong
# type is: the field named, nothing of the text kept.
def _refusing_unencodable(converter):
    def check_lower(value):
        if not isinstance(value, str):
            # The generated check's TypeError named nothing ("argument must be str").
            raise WrongType(str, type(value).__name__, id(value))
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
        raise WrongType(
            str,
            None,
            id(value),
            said="a str that UTF-8 cannot write (a lone surrogate: half of an emoji or of "
            "another character)",
        )

    converter.check_lower = staticmethod(check_lower)


for _string in {
    getattr(_module, "_UniffiFfiConverterString", None) for _module in (_ffi_core, _ffi_calls)
} - {None}:
    _refusing_unencodable(_string)


# Bytes (a store's key) of another type were a TypeError naming nothing; a list given a str
# (``hazards = "heavy_loads"``) was taken as its characters. Both refused as a value of the
# wrong type, named by their field or argument. Any bytes-like value is taken as its bytes: a
# bytearray (what a socket's reader fills) passed the check and then failed in ctypes, and an
# answer the app's transport returned so was said "hub unreachable".
def _bytes_only(converter):
    write = converter.write

    def check_lower(value):
        try:
            memoryview(value)
        except TypeError:
            raise WrongType(bytes, type(value).__name__, id(value)) from None
        return value

    def write_bytes(value, buf):
        write(value if type(value) is bytes else bytes(value), buf)

    converter.check_lower = staticmethod(check_lower)
    converter.write = staticmethod(write_bytes)


def _no_text_for_a_list(converter):
    check = converter.check_lower

    def check_lower(value):
        # A dict was taken as its keys (``referrals`` given where a list belongs), and None, a
        # number or a generator (whose length the writer asks) was a TypeError naming no field.
        if isinstance(value, (str, bytes, bytearray, Mapping)) or not isinstance(value, Collection):
            raise WrongType(list, type(value).__name__, id(value))
        return check(value)

    converter.check_lower = staticmethod(check_lower)


# A list given where a map keyed by id belongs (``followups = [FollowUp(...)]``, an easy
# mistake) was refused naming only the record.
def _a_map_only(converter):
    check = converter.check_lower

    def check_lower(value):
        if not isinstance(value, Mapping):
            raise WrongType(dict, type(value).__name__, id(value))
        return check(value)

    converter.check_lower = staticmethod(check_lower)


for _module in (_ffi_core, _ffi_calls):
    for _name, _converter in list(vars(_module).items()):
        if not isinstance(_converter, type) or getattr(_converter, "_vigie_typed", False):
            continue
        if _name == "_UniffiFfiConverterBytes":
            _bytes_only(_converter)
        elif _name.startswith("_UniffiFfiConverterSequence"):
            _no_text_for_a_list(_converter)
        elif _name.startswith("_UniffiFfiConverterMap"):
            _a_map_only(_converter)
        else:
            continue
        _converter._vigie_typed = True

for _module in (_ffi_core, _ffi_calls):
    for _name in _module.__all__:
        _converter = getattr(_module, f"_UniffiFfiConverterType{_name}", None)
        if _converter is not None and hasattr(_converter, "check_lower"):
            _naming_the_field(_converter, getattr(_module, _name))


# A yes or no was taken by its truth whatever it held: ``night_work = "non"`` recorded night
# work. Only a bool is one.
def _strict_bool(converter):
    def check_lower(value):
        if not isinstance(value, bool):
            raise TypeError("not a bool")
        return value

    converter.check_lower = staticmethod(check_lower)


# A yes/no is no number: ``estimated_age = True`` recorded a child of 1 (a bool is an int to
# Python).
def _no_bool_for_a_number(converter):
    check = converter.check_lower

    def check_lower(value):
        if isinstance(value, bool):
            raise TypeError("a bool is no number")
        return check(value)

    converter.check_lower = staticmethod(check_lower)


# A number or a yes/no of the wrong type (hours typed as "40") was refused naming no field: "a
# ChildCase holding a value of the wrong type or out of range". Named as an enum's is.
for _module in (_ffi_core, _ffi_calls):
    _boolean = getattr(_module, "_UniffiFfiConverterBoolean", None)
    if _boolean is not None and not getattr(_boolean, "_vigie_strict", False):
        _strict_bool(_boolean)
        _boolean._vigie_strict = True
    for _name, _expected in [("Int32", int), ("UInt32", int), ("Int64", int), ("UInt64", int),
                             ("Float64", float), ("Boolean", bool)]:
        _converter = getattr(_module, f"_UniffiFfiConverter{_name}", None)
        if _converter is not None and not getattr(_converter, "_vigie_named", False):
            if _expected is not bool:
                _no_bool_for_a_number(_converter)
            _naming_the_field(_converter, _expected)
            _converter._vigie_named = True


# A field name mistyped, or guessed (``workplace.latitude`` for ``location.point``), was kept by
# Python as an attribute of its own and the record sent without it: the value lost, unsaid. A
# record takes its fields only; anything else is an ``AttributeError`` naming the field meant.
@functools.cache
def _field_names(record_type):
    return frozenset(inspect.signature(record_type.__init__).parameters) - {"self"}


# Coordinates guessed under their usual names are the location's point (no spelling is close).
_COORDINATES = frozenset({"latitude", "longitude", "lat", "lon", "lng", "gps", "point",
                          "coordinates", "position"})


def _set_field(self, name, value):
    fields = _field_names(type(self))
    # The generated code's own (a variant's ``_values``) are not fields.
    if name not in fields and not name.startswith("_"):
        close = difflib.get_close_matches(name, fields, n=1)
        if name.lower() in _COORDINATES and "location" in fields:
            close = ["location.point"]
        meant = f" (did you mean {close[0]!r}?)" if close else ""
        raise AttributeError(f"{type(self).__name__} has no field {name!r}{meant}")
    object.__setattr__(self, name, value)


for _class in _generated_records():
    if "__init__" in vars(_class):
        _class.__setattr__ = _set_field
# A variant's fields are its ``__init__``'s, which it takes from the class the generated code
# built it on.
for _variant in _generated_variants():
    _variant.__setattr__ = _set_field


# A value of the wrong type, or a str UTF-8 cannot write, given as an argument rather than in a
# record's field (``new_referral(ServiceKind.EDUCATION, "\ud800", ...)``, a provider typed in a
# form) was refused naming nothing: named by its argument, as a record's field is.
def _naming_the_argument(call):
    try:
        signature = inspect.signature(call)
    except (TypeError, ValueError):
        return call

    @functools.wraps(call)
    def named(*args, **kwargs):
        try:
            return call(*args, **kwargs)
        except WrongType as refused:
            if refused._path:
                raise
            try:
                given = signature.bind(*args, **kwargs).arguments
            except TypeError:
                raise refused from None
            for name, value in given.items():
                held = (value, *value) if isinstance(value, (list, tuple)) else (value,)
                # A variant's values (``AreaFilter.COMMUNITY([...])``) are the argument's too.
                held = (*held, *getattr(value, "_values", ()))
                # None is one object for every argument: it is refused only where none is
                # allowed (``child_case_pages(None, None)`` named the query, not the page size).
                annotation = str(signature.parameters[name].annotation)
                optional = value is None and ("Optional" in annotation or "None" in annotation)
                if name != "self" and not optional and any(
                        id(v) == refused._inner for v in held):
                    raise WrongType(refused._expected, refused._type_name, refused._inner,
                                    (name,), False, refused._said) from None
            raise
        finally:
            _raise_pending_on_main()

    return named


for _module in (_ffi_core, _ffi_calls):
    for _name in _module.__all__:
        _public = getattr(_module, _name)
        if inspect.isfunction(_public):
            globals()[_name] = _naming_the_argument(_public)
        elif (isinstance(_public, type) and not issubclass(_public, BaseException)
              and not hasattr(_public, "__dataclass_fields__")):
            for _method, _call in list(vars(_public).items()):
                if not _method.startswith("_") and inspect.isfunction(_call):
                    setattr(_public, _method, _naming_the_argument(_call))


# A Ctrl-C (or ``sys.exit``) in the app's own code called back by a sync (its transport, its
# progress listener) or by a write (its change listeners) is no ``Exception``: the generated
# code let it through to ctypes, which printed it and dropped it, and the script went on with a
# "hub unreachable". A sync ends at once, then raises it; a change listener's is raised when
# the call that told it returns (on the main thread) or reaches the main thread as Ctrl-C does
# (from another); anything else a listener raises is dropped, as README says.
class _Interruptible:
    """The first ``BaseException`` that is no ``Exception`` an app's callbacks raised."""

    def __init__(self):
        self.raised = None

    def keep(self, raised):
        if self.raised is None:
            self.raised = raised


class _TransportOf(SyncTransport):  # noqa: F405 (from the generated module)
    def __init__(self, app, interrupted):
        self._app, self._interrupted = app, interrupted

    def _call(self, method, request):
        # Interrupted in the progress listener: no exchange more.
        if self._interrupted.raised is not None:
            raise TransportError.Unreachable(reason="the sync was interrupted")  # noqa: F405
        try:
            return getattr(self._app, method)(request)
        except Exception:
            raise
        except BaseException as raised:  # noqa: B036 (kept, raised once the sync ends)
            self._interrupted.keep(raised)
            raise TransportError.Unreachable(reason="the sync was interrupted") from None  # noqa: F405

    def exchange(self, request):
        return self._call("exchange", request)

    def exchange_attachment(self, request):
        return self._call("exchange_attachment", request)


class _ProgressOf(SyncProgressListener):  # noqa: F405
    def __init__(self, app, interrupted):
        self._app, self._interrupted = app, interrupted

    def on_progress(self, summary):
        try:
            self._app.on_progress(summary)
        except Exception:
            raise
        except BaseException as raised:  # noqa: B036
            self._interrupted.keep(raised)


# A Ctrl-C or exit a change listener raised on the main thread, raised when the call that
# told it returns (raised inside the callback, ctypes printed and dropped it).
_pending_on_main = []


def _raise_pending_on_main():
    if _pending_on_main and threading.current_thread() is threading.main_thread():
        raise _pending_on_main.pop()


class _ListenerOf(ChangeListener):  # noqa: F405
    def __init__(self, app):
        self._app = app

    def _call(self, method, *args):
        try:
            getattr(self._app, method)(*args)
        except Exception:
            pass  # a listener's failure changes nothing
        except BaseException as raised:  # noqa: B036
            if threading.current_thread() is threading.main_thread():
                if not _pending_on_main:
                    _pending_on_main.append(raised)
            elif isinstance(raised, KeyboardInterrupt):
                _thread.interrupt_main()

    def on_change(self, change):
        self._call("on_change", change)

    def on_bulk_change(self, source, records):
        self._call("on_bulk_change", source, records)


def _interruptible_sync(sync_with):
    @functools.wraps(sync_with)
    def sync(self, transport, progress=None, attachments=None, *rest, **named):
        interrupted = _Interruptible()
        # Only what the generated code takes: anything else is refused naming its argument.
        if isinstance(transport, SyncTransport):  # noqa: F405
            transport = _TransportOf(transport, interrupted)
        if isinstance(progress, SyncProgressListener):  # noqa: F405
            progress = _ProgressOf(progress, interrupted)
        try:
            return sync_with(self, transport, progress, attachments, *rest, **named)
        finally:
            if interrupted.raised is not None:
                raise interrupted.raised

    return sync


def _guarded_listener(add_change_listener):
    @functools.wraps(add_change_listener)
    def add(self, listener):
        if isinstance(listener, ChangeListener):  # noqa: F405
            listener = _ListenerOf(listener)
        return add_change_listener(self, listener)

    return add


_VigieStore.sync_with = _interruptible_sync(_VigieStore.sync_with)
_VigieStore.add_change_listener = _guarded_listener(_VigieStore.add_change_listener)

__all__ = [*_core, *_calls, "HubTransport", "WrongType"]
