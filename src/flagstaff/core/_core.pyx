# flagstaff's evaluation core: a config_v6 document compiled once into the C
# structures of evaluate.h, and evaluated per user without Python objects
# beyond the result.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdio cimport snprintf
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from flagstaff.core._native cimport *

import datetime as _datetime

from flagstaff._errors import ErrorCode
from flagstaff.config import ConfigModel, SettingEntry, decode_config

fs_textual_init()

cdef object _EPOCH_UTC = _datetime.datetime(1970, 1, 1, tzinfo=_datetime.timezone.utc)
cdef object _EPOCH_NAIVE = _datetime.datetime(1970, 1, 1)
cdef object _DATETIME = _datetime.datetime

# Which comparison value each comparator reads: a list, a string or a number.
cdef str _VALUE_KEYS = "llllllssssddddddllddssllllllssllllll"

cdef int _MAX_PERCENTAGE = 1 << 30

# The confidential comparators, whose values are SHA-256 hex digests.
cdef frozenset _HASHED = frozenset((16, 17, 20, 21, 22, 23, 24, 25, 26, 27))


cdef bint _decode_digest(str hex_text, uint8_t *digest):
    cdef bytes data = hex_text.encode("utf-8", "surrogatepass")
    cdef fs_bytes view
    view.ptr = PyBytes_AS_STRING(data)
    view.size = PyBytes_GET_SIZE(data)
    return fs_decode_digest(view, digest)

# The name ConfigCat's messages give each setting type's Python type.
cdef tuple _TYPE_NAMES = ("<class 'bool'>", "<class 'str'>", "<class 'int'>",
                          "<class 'float'>")


@cython.final
cdef class User:
    """
    The user a setting is evaluated for.

    :param identifier: a stable id of the user or session; it is hashed for
        percentage options, so the same id always gets the same variation.
    :param email: the ``Email`` attribute.
    :param country: the ``Country`` attribute.
    :param custom: further attributes by name: str, int, float, datetime or a
        list of str.
    """

    cdef readonly object identifier
    cdef readonly object email
    cdef readonly object country
    cdef readonly dict custom

    def __init__(self, identifier, email=None, country=None, custom=None):
        self.identifier = identifier
        self.email = email
        self.country = country
        self.custom = dict(custom) if custom else {}

    cdef object attribute(self, int32_t index, object name):
        # The well-known names read their own fields; a custom attribute of
        # the same name is never consulted, as in ConfigCat's SDKs.
        if index == FS_ATTR_IDENTIFIER:
            return self.identifier
        if index == FS_ATTR_EMAIL:
            return self.email
        if index == FS_ATTR_COUNTRY:
            return self.country
        cdef PyObject *found = PyDict_GetItem(self.custom, name)
        return <object>found if found is not NULL else None

    def get(self, str name):
        """
        The attribute called `name`, or None.
        """
        for index, known in enumerate(("Identifier", "Email", "Country")):
            if name == known:
                return self.attribute(index, name)
        return self.custom.get(name)

    def __repr__(self):
        parts = [repr(self.identifier)]
        if self.email is not None:
            parts.append(f"email={self.email!r}")
        if self.country is not None:
            parts.append(f"country={self.country!r}")
        if self.custom:
            parts.append(f"custom={self.custom!r}")
        return f"User({', '.join(parts)})"

    def __eq__(self, other):
        if not isinstance(other, User):
            return NotImplemented
        cdef User that = other
        return (self.identifier == that.identifier and self.email == that.email
                and self.country == that.country and self.custom == that.custom)

    __hash__ = None


@cython.final
cdef class EvaluationDetails:
    """
    What an evaluation served and why.

    ``matched_rule`` is the index of the targeting rule that served the
    value, ``matched_option`` the index of the percentage option (within the
    rule's options when ``matched_rule`` is set); both are None otherwise.
    """

    cdef readonly str key
    cdef readonly object value
    cdef readonly object variation_id
    cdef readonly bint is_default_value
    cdef readonly object error
    cdef readonly object error_code
    cdef readonly object matched_rule
    cdef readonly object matched_option
    cdef readonly object user
    cdef readonly object fetch_time
    cdef object _config         # the Config that evaluated it, for explain()

    def __init__(self, str key, value, *, variation_id=None,
                 bint is_default_value=False, error=None,
                 error_code=ErrorCode.NONE, matched_rule=None,
                 matched_option=None, user=None, fetch_time=None):
        self.key = key
        self.value = value
        self.variation_id = variation_id
        self.is_default_value = is_default_value
        self.error = error
        self.error_code = ErrorCode(error_code)
        self.matched_rule = matched_rule
        self.matched_option = matched_option
        self.user = user
        self.fetch_time = fetch_time

    def explain(self):
        """
        Why this value was served, in words (see :meth:`Config.explain`).
        """
        if self._config is None:
            return f"No config evaluated '{self.key}': {self.error}"
        return (<Config>self._config).explain(self.key, self.user)

    def __repr__(self):
        text = (f"EvaluationDetails(key={self.key!r}, value={self.value!r}, "
                f"variation_id={self.variation_id!r}")
        if self.is_default_value:
            text += f", is_default_value=True, error_code={self.error_code!r}"
        if self.matched_rule is not None:
            text += f", matched_rule={self.matched_rule}"
        if self.matched_option is not None:
            text += f", matched_option={self.matched_option}"
        return text + ")"


# ---- User attributes ---------------------------------------------------------

ctypedef struct _Source:
    PyObject *user          # a User, borrowed for the evaluation
    PyObject *names         # the config's attribute names (a tuple)
    PyObject *error         # an owned exception raised while converting


cdef int _copy_text(bytes data, fs_attr *out, fs_scratch *scratch) except -1:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef char *text = <char *>fs_scratch_alloc(scratch, size + 1)
    if text is NULL:
        raise MemoryError()
    memcpy(text, PyBytes_AS_STRING(data), size)
    out.text.ptr = text
    out.text.size = size
    return 0


cdef int _set_str(str value, fs_bytes *out, fs_scratch *scratch) except -1:
    cdef Py_ssize_t size
    cdef const char *text
    try:
        text = PyUnicode_AsUTF8AndSize(value, &size)
    except UnicodeEncodeError:
        # Lone surrogates have no UTF-8; their surrogatepass bytes compare
        # as the config's own text was compiled.
        data = value.encode("utf-8", "surrogatepass")
        size = len(data)
        text = <char *>fs_scratch_alloc(scratch, size + 1)
        if text is NULL:
            raise MemoryError()
        memcpy(<char *>text, PyBytes_AS_STRING(data), size)
    out.ptr = text
    out.size = size
    return 0


cdef int _set_double_text(double value, fs_attr *out,
                          fs_scratch *scratch) except -1:
    cdef char *text = <char *>fs_scratch_alloc(scratch, 32)
    if text is NULL:
        raise MemoryError()
    out.text.ptr = text
    out.text.size = fs_format_double(value, text)
    return 0


cdef double _epoch_seconds(object moment) except? -1.0:
    # Naive datetimes are UTC, aware ones are converted.
    if moment.tzinfo is None:
        return (moment - _EPOCH_NAIVE).total_seconds()
    return (moment - _EPOCH_UTC).total_seconds()


cdef int _convert(object value, fs_attr *out, fs_scratch *scratch) except -1:
    """Fills `out` with how the comparators see `value`."""
    cdef int overflow = 0
    cdef long long whole
    cdef char *text
    cdef fs_bytes *items
    cdef Py_ssize_t count, i
    cdef size_t size

    if value is None:
        return 0
    out.present = 1
    if isinstance(value, str):
        out.is_string = 1
        return _set_str(<str>value, &out.text, scratch)
    if isinstance(value, bool):
        out.has_number = out.has_seconds = 1
        out.number = out.seconds = 1.0 if value else 0.0
        _copy_text(b"True" if value else b"False", out, scratch)
        return 0
    if isinstance(value, int):
        whole = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow:
            _copy_text(str(value).encode(), out, scratch)
        else:
            text = <char *>fs_scratch_alloc(scratch, 24)
            if text is NULL:
                raise MemoryError()
            out.text.ptr = text
            out.text.size = snprintf(text, 24, "%lld", whole)
        try:
            out.number = out.seconds = float(value)
            out.has_number = out.has_seconds = 1
        except OverflowError:
            pass        # too large for a double: no number comparisons
        return 0
    if isinstance(value, float):
        out.has_number = out.has_seconds = 1
        out.number = out.seconds = value
        return _set_double_text(value, out, scratch)
    if isinstance(value, _DATETIME):
        out.has_seconds = 1
        out.seconds = _epoch_seconds(value)
        return _set_double_text(out.seconds, out, scratch)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        count = len(value)
        items = <fs_bytes *>fs_scratch_alloc(scratch, sizeof(fs_bytes) * (count + 1))
        if items is NULL:
            raise MemoryError()
        for i in range(count):
            _set_str(<str>value[i], &items[i], scratch)
        out.has_list = 1
        out.items = items
        out.item_count = count
        size = fs_format_string_list(items, count, NULL, 0)
        text = <char *>fs_scratch_alloc(scratch, size + 1)
        if text is NULL:
            raise MemoryError()
        out.text.ptr = text
        out.text.size = fs_format_string_list(items, count, text, size + 1)
        return 0

    # Anything else compares as its str(), and as a number if float() takes it.
    _copy_text(str(value).encode("utf-8", "surrogatepass"), out, scratch)
    try:
        out.number = out.seconds = float(value)
        out.has_number = out.has_seconds = 1
    except (TypeError, ValueError, OverflowError):
        pass
    return 0


cdef int _resolve_user(void *source, int32_t index, fs_attr *out,
                       fs_scratch *scratch) noexcept with gil:
    cdef _Source *src = <_Source *>source
    cdef User user = <User>src.user
    try:
        name = (<tuple>src.names)[index]
        _convert(user.attribute(index, name), out, scratch)
        return 0
    except BaseException as exc:
        if src.error is NULL:
            Py_INCREF(exc)
            src.error = <PyObject *>exc
        return -1


# ---- The compiled config -----------------------------------------------------

ctypedef struct _Chunk:
    _Chunk *next


cdef enum:
    _CHUNK_SIZE = 64 * 1024
    _LARGE = 16 * 1024


cdef class _Arena:
    """Zeroed memory for a compiled config, carved from large chunks and
    freed with it."""

    cdef _Chunk *chunks
    cdef char *free_at
    cdef size_t free_size

    cdef void *alloc(self, size_t size) except NULL:
        size = (size + 15) & ~(<size_t>15) if size else 16
        if size > self.free_size:
            if size > _LARGE:
                return self._chunk(size)
            self.free_at = <char *>self._chunk(_CHUNK_SIZE)
            self.free_size = _CHUNK_SIZE
        cdef void *out = self.free_at
        self.free_at += size
        self.free_size -= size
        return out

    cdef void *_chunk(self, size_t size) except NULL:
        cdef _Chunk *chunk = <_Chunk *>calloc(1, 16 + size)
        if chunk is NULL:
            raise MemoryError()
        chunk.next = self.chunks
        self.chunks = chunk
        return (<char *>chunk) + 16

    def __dealloc__(self):
        cdef _Chunk *next
        while self.chunks is not NULL:
            next = self.chunks.next
            free(self.chunks)
            self.chunks = next


cdef class _Text:
    """Text kept once in a config's arena."""

    cdef fs_bytes text


cdef class _Segments:
    """The compiled segments of one source config."""

    cdef fs_segment *segments
    cdef int32_t count
    cdef tuple errors

    def __cinit__(self, tuple entries):
        self.errors = tuple(entry.error if entry.segment is None else None
                            for entry in entries)


@cython.final
cdef class Config:
    """
    A ConfigCat config_v6 document, decoded and compiled once, immutable, and
    evaluated without I/O. Safe to share between threads.

    Build one with :meth:`from_json`.
    """

    cdef _Arena _arena
    cdef fs_config _config
    cdef readonly object model
    cdef dict _index            # setting key -> index
    cdef tuple _keys
    cdef list _values           # value objects by slot
    cdef dict _value_slots
    cdef dict _equalities
    cdef list _variations       # variation ids by slot
    cdef dict _variation_slots
    cdef dict _attribute_index  # attribute name -> index
    cdef tuple _attribute_names
    cdef dict _compiled_segments
    cdef dict _texts
    cdef dict _prerequisites     # setting index -> indexes it asks for
    cdef Py_ssize_t _compiling

    def __init__(self):
        raise TypeError("use Config.from_json() to build a Config")

    @staticmethod
    def from_json(raw):
        """
        Decodes and compiles a config_v6 document.

        :param raw: the JSON text (bytes or str), as served by ConfigCat.
        :return: the compiled config.
        :raises ConfigError: when `raw` is not a config_v6 document; the
            message names the JSON path and what was expected there.
        """
        return Config.from_model(decode_config(raw))

    @staticmethod
    def from_model(model):
        """
        Compiles a decoded config (see :mod:`flagstaff.config`), for
        instance one merged from flag overrides.
        """
        if not isinstance(model, ConfigModel):
            raise TypeError(f"expected a ConfigModel, not {type(model).__name__}")
        cdef Config config = Config.__new__(Config)
        config._compile(model)
        return config

    # -- compiling ---------------------------------------------------------

    cdef _compile(self, model):
        self.model = model
        self._arena = _Arena()
        self._values = []
        self._value_slots = {}
        self._equalities = {}
        self._variations = []
        self._variation_slots = {}
        self._attribute_index = {"Identifier": 0, "Email": 1, "Country": 2}
        self._compiled_segments = {}
        self._texts = {}

        entries = list(model.settings.values())
        self._keys = tuple(entry.key for entry in entries)
        self._index = {key: index for index, key in enumerate(self._keys)}
        self._config.setting_count = len(entries)
        self._config.settings = <fs_setting *>self._arena.alloc(
            sizeof(fs_setting) * len(entries))
        self._prerequisites = {}
        for index, entry in enumerate(entries):
            self._compiling = index
            self._compile_setting(&self._config.settings[index], entry)
        edges = [self._prerequisites.get(index, ()) for index in range(len(entries))]
        for index in _acyclic(edges):
            self._config.settings[index].acyclic = 1

        names = sorted(self._attribute_index, key=self._attribute_index.get)
        self._attribute_names = tuple(names)
        self._config.attribute_count = len(names)

    cdef fs_bytes _text(self, str text) except *:
        cdef bytes data = text.encode("utf-8", "surrogatepass")
        cdef Py_ssize_t size = len(data)
        cdef char *copy = <char *>self._arena.alloc(size + 1)
        memcpy(copy, PyBytes_AS_STRING(data), size)
        cdef fs_bytes out
        out.ptr = copy
        out.size = size
        return out

    cdef fs_bytes _salt(self, str salt) except *:
        # Every setting of a config has its salt: keep one copy of each.
        return self._shared(salt)

    cdef fs_bytes _shared(self, str text) except *:
        cdef _Text held = self._texts.get(text)
        if held is None:
            held = self._texts[text] = _Text()
            held.text = self._text(text)
        return held.text

    cdef const char *_message(self, str text) except NULL:
        # Many conditions may share one complaint: keep one copy of each.
        return self._shared(text).ptr

    cdef int32_t _attribute(self, str name) except -1:
        index = self._attribute_index.get(name)
        if index is None:
            index = self._attribute_index[name] = len(self._attribute_index)
        return index

    cdef int32_t _slot(self, dict slots, list table, object value) except -1:
        # Interned by type and value, so that True and 1 stay apart.
        key = (type(value), value)
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = len(table)
            table.append(value)
        return slot

    cdef object _typed_value(self, object value, object setting_type):
        """The setting's value from a SettingValue, or the error string."""
        if value is None:
            return None, "Value is missing"
        if setting_type not in (FS_BOOL, FS_STRING, FS_INT, FS_DOUBLE):
            return None, "Unsupported setting type"
        typed = (value.b, value.s, value.i, value.d)[setting_type]
        if typed is None:
            return None, ("Setting value is not of the expected type "
                          + _TYPE_NAMES[setting_type])
        if setting_type == FS_DOUBLE:
            typed = float(typed)
        return typed, None

    cdef int32_t _equality(self, object setting_type, object typed) except -1:
        # Values that Python's == holds equal share a class.
        key = (setting_type, typed)
        equality = self._equalities.get(key)
        if equality is None:
            equality = self._equalities[key] = len(self._equalities)
        return equality

    cdef int _served(self, fs_served *out, object value, object variation,
                     object setting_type) except -1:
        typed, error = self._typed_value(value, setting_type)
        out.variation = -1
        if variation is not None:
            out.variation = self._slot(self._variation_slots, self._variations,
                                       variation)
        if error is not None:
            out.error = self._message(error)
            out.slot = out.equality = -1
            return 0
        out.error = NULL
        out.slot = self._slot(self._value_slots, self._values, typed)
        out.equality = self._equality(setting_type, typed)
        return 0

    cdef fs_option *_options(self, tuple options, object setting_type) except? NULL:
        if not options:
            return NULL
        cdef fs_option *out = <fs_option *>self._arena.alloc(
            sizeof(fs_option) * len(options))
        for i, option in enumerate(options):
            out[i].percentage = max(-_MAX_PERCENTAGE, min(option.p, _MAX_PERCENTAGE))
            self._served(&out[i].served, option.v, option.i, setting_type)
        return out

    cdef int _compile_setting(self, fs_setting *out, entry) except -1:
        out.key = self._text(entry.key)
        out.salt = self._salt(entry.salt)
        out.percentage_attribute = -1
        if entry.setting is None:
            out.error = self._message(entry.error)
            return 0
        setting = entry.setting
        setting_type = setting.t
        if setting.a is not None:
            out.percentage_attribute = self._attribute(setting.a)

        segments = self._segments(entry.segments)
        out.segments = (<_Segments>segments).segments
        out.segment_count = (<_Segments>segments).count

        out.rule_count = len(setting.r)
        if out.rule_count:
            out.rules = <fs_rule *>self._arena.alloc(sizeof(fs_rule) * out.rule_count)
        for i, rule in enumerate(setting.r):
            self._compile_rule(&out.rules[i], rule, setting_type, segments)
        out.option_count = len(setting.p)
        out.options = self._options(setting.p, setting_type)
        self._served(&out.value, setting.v, setting.i, setting_type)
        return 0

    cdef int _compile_rule(self, fs_rule *out, rule, object setting_type,
                           _Segments segments) except -1:
        out.condition_count = len(rule.c)
        if out.condition_count:
            out.conditions = <fs_condition *>self._arena.alloc(
                sizeof(fs_condition) * out.condition_count)
        for i, condition in enumerate(rule.c):
            self._compile_condition(&out.conditions[i], condition, segments)
        if rule.s is not None:
            out.has_served = 1
            self._served(&out.served, rule.s.v, rule.s.i, setting_type)
        options = rule.p or ()
        out.option_count = len(options)
        out.options = self._options(options, setting_type)
        return 0

    cdef int _compile_condition(self, fs_condition *out, condition,
                                _Segments segments) except -1:
        # A wrapper holding several kinds is read as the SDK reads it:
        # user condition first, then segment, then prerequisite.
        if condition.u is not None:
            return self._compile_user_condition(out, condition.u)
        if condition.s is not None:
            out.kind = FS_COND_SEGMENT
            index, comparator = condition.s.s, condition.s.c
            out.comparator = comparator if comparator in (0, 1) else 255
            if index is None or not 0 <= index < segments.count:
                out.early_error = self._message("Segment reference is invalid.")
            elif segments.errors[index] is not None:
                out.early_error = self._message(segments.errors[index])
            else:
                out.target = index
            return 0
        if condition.p is not None:
            return self._compile_prerequisite(out, condition.p)
        out.kind = FS_COND_NONE
        return 0

    cdef int _compile_prerequisite(self, fs_condition *out, prerequisite) except -1:
        out.kind = FS_COND_PREREQUISITE
        comparator = prerequisite.c
        out.comparator = comparator if comparator in (0, 1) else 255
        target = self._index.get(prerequisite.f) if prerequisite.f is not None else None
        if target is None:
            out.early_error = self._message("Prerequisite flag key is missing or invalid.")
            return 0
        out.target = target
        self._prerequisites.setdefault(self._compiling, []).append(target)
        entry = self.model.settings[prerequisite.f]
        setting_type = entry.setting.t if entry.setting is not None else None
        typed, error = self._typed_value(prerequisite.v, setting_type)
        if error is None and _first_value_key(prerequisite.v) != setting_type:
            error = (f"Type mismatch between comparison value '{typed}' and "
                     f"prerequisite flag '{prerequisite.f}'")
        if error is not None:
            out.early_error = self._message(error)
            return 0
        out.equality = self._equality(setting_type, typed)
        return 0

    cdef int _compile_user_condition(self, fs_condition *out, condition) except -1:
        out.kind = FS_COND_USER
        comparator = condition.c
        if comparator is None or not 0 <= comparator < 36:
            out.early_error = self._message("Comparison operator is missing or invalid.")
            return 0
        out.comparator = comparator
        if condition.a is None:
            out.early_error = self._message("Comparison attribute name is missing.")
            return 0
        out.attribute = self._attribute(condition.a)

        value_key = _VALUE_KEYS[comparator]
        if value_key == "d":
            if condition.d is None:
                out.late_error = self._message("Comparison value is missing or invalid.")
            else:
                out.number = condition.d
            return 0
        if value_key == "s":
            # A single value is the only item; without one nothing is equal.
            values = [condition.s] if condition.s is not None else []
        elif condition.l is None:
            out.late_error = self._message("Comparison value is missing or invalid.")
            return 0
        else:
            values = condition.l

        out.item_count = len(values)
        if not values:
            return 0
        out.items = <fs_item *>self._arena.alloc(sizeof(fs_item) * len(values))
        if 4 <= comparator <= 9:
            out.versions = <fs_semver *>self._arena.alloc(sizeof(fs_semver) * len(values))
        elif comparator in _HASHED:
            out.digests = <uint8_t (*)[32]>self._arena.alloc(32 * len(values))
        for i, value in enumerate(values):
            if not self._compile_item(out, i, value, comparator):
                out.late_error = self._message(
                    f"'{value}' is not a valid hashed prefix or suffix.")
        return 0

    cdef bint _compile_item(self, fs_condition *condition, Py_ssize_t i,
                            str text, int comparator) except -1:
        """Prepares comparison value `i`; False when it is malformed."""
        cdef fs_item *out = &condition.items[i]
        cdef fs_bytes trimmed
        out.text = self._text(text)
        if 4 <= comparator <= 9:
            trimmed = fs_strip(out.text)
            out.skip = trimmed.size == 0
            out.valid = fs_semver_parse(trimmed, &condition.versions[i])
        elif 22 <= comparator <= 25:
            # "<n>_<hash>": the hash of the first or last n UTF-8 bytes.
            # The length reads as Python's int() reads it, as in the SDK.
            length, underscore, digest = text.partition("_")
            try:
                n = int(length)
            except ValueError:
                return False
            if not underscore:
                return False
            out.length = max(-(1 << 30), min(n, 1 << 30))
            out.valid = _decode_digest(digest, condition.digests[i])
        elif comparator in _HASHED:
            out.valid = fs_decode_digest(out.text, condition.digests[i])
        return True

    cdef _Segments _segments(self, tuple entries):
        # Settings of one source config share its segments; compile once.
        segments = self._compiled_segments.get(id(entries))
        if segments is not None:
            return segments
        cdef _Segments compiled = _Segments(entries)
        compiled.count = len(entries)
        if compiled.count:
            compiled.segments = <fs_segment *>self._arena.alloc(
                sizeof(fs_segment) * compiled.count)
        cdef fs_segment *segment
        for i, entry in enumerate(entries):
            if entry.segment is None:
                continue
            segment = &compiled.segments[i]
            segment.name = self._text(entry.segment.n)
            segment.condition_count = len(entry.segment.r)
            if segment.condition_count:
                segment.conditions = <fs_condition *>self._arena.alloc(
                    sizeof(fs_condition) * segment.condition_count)
            for j, condition in enumerate(entry.segment.r):
                self._compile_user_condition(&segment.conditions[j], condition)
        self._compiled_segments[id(entries)] = compiled
        return compiled

    # -- evaluating --------------------------------------------------------

    def keys(self):
        """
        The keys of the config's settings, in document order.
        """
        return list(self._keys)

    def attributes(self):
        """
        The user attributes the config can read: ``Identifier``, ``Email``,
        ``Country``, and every custom attribute its rules and percentage
        options name.
        """
        return list(self._attribute_names)

    def __len__(self):
        return len(self._keys)

    def __contains__(self, key):
        return key in self._index

    def get_value(self, str key, default, user=None):
        """
        The value of setting `key` for `user`.

        Never raises for a flag problem: a missing key or a defective
        setting serves `default` (see :meth:`get_value_details` for why).

        :param key: the setting key.
        :param default: served when the setting cannot be evaluated.
        :param user: the :class:`User`, or None.
        """
        cdef PyObject *found = PyDict_GetItem(self._index, key)
        if found is NULL:
            return default
        cdef fs_result result
        cdef _Evaluation evaluation
        _start(&evaluation, self, user)
        cdef int status = fs_evaluate(&evaluation.ctx, <object>found, &result)
        _finish(&evaluation)
        if status < 0:
            return default
        return self._values[result.served.slot]

    def get_value_details(self, str key, default, user=None):
        """
        The value of setting `key` for `user`, with what served it.

        :param key: the setting key.
        :param default: served when the setting cannot be evaluated.
        :param user: the :class:`User`, or None.
        :return: an :class:`EvaluationDetails`; on a problem its
            ``is_default_value`` is set and ``error`` says what went wrong.
        """
        cdef PyObject *found = PyDict_GetItem(self._index, key)
        if found is NULL:
            return _details(key, default, None, user, _missing_key_error(
                key, default, self._keys), ErrorCode.SETTING_KEY_MISSING)
        cdef fs_result result
        cdef _Evaluation evaluation
        _start(&evaluation, self, user)
        cdef int status = fs_evaluate(&evaluation.ctx, <object>found, &result)
        message = _finish(&evaluation)
        cdef EvaluationDetails details
        if status < 0:
            details = _details(key, default, None, user, _evaluation_error(
                key, default, message), ErrorCode.INVALID_CONFIG_MODEL)
        else:
            details = self._served_details(key, user, &result)
        details._config = self
        return details

    def get_all_values(self, user=None):
        """
        Every setting's value for `user`, as ``{key: value}``; settings that
        cannot be evaluated are left out.
        """
        cdef dict values = {}
        cdef fs_result result
        cdef _Evaluation evaluation
        _start(&evaluation, self, user)
        try:
            for index, key in enumerate(self._keys):
                if fs_evaluate(&evaluation.ctx, index, &result) == 0:
                    values[key] = self._values[result.served.slot]
        finally:
            _finish(&evaluation)
        return values

    def explain(self, str key, user=None):
        """
        Why `user` is served what they are served for setting `key`, in
        words: each targeting rule and condition with its outcome, the
        segments and prerequisites evaluated, the percentage bucket and the
        option it selected. Traced from the core's own evaluation.

        :return: the explanation, several lines of text.
        """
        cdef PyObject *found = PyDict_GetItem(self._index, key)
        if found is NULL:
            return f"Setting '{key}' is not in the config; it has: " + ", ".join(
                f"'{k}'" for k in self._keys)
        cdef list events = []
        cdef fs_result result
        cdef _Evaluation evaluation
        _start(&evaluation, self, user)
        evaluation.ctx.trace = _record_trace
        evaluation.ctx.trace_sink = <void *>events
        cdef int status = fs_evaluate(&evaluation.ctx, <object>found, &result)
        message = _finish(&evaluation)
        from flagstaff.core._explain import explain
        value = self._values[result.served.slot] if status == 0 else None
        return explain(self.model, self._keys, key, user, events, value,
                       message if status < 0 else None)

    def get_all_value_details(self, user=None):
        """
        :meth:`get_value_details` for every setting, with None as default.
        """
        return [self.get_value_details(key, None, user) for key in self._keys]

    cdef EvaluationDetails _served_details(self, str key, user, fs_result *result):
        cdef EvaluationDetails details = EvaluationDetails.__new__(EvaluationDetails)
        details.key = key
        details.value = self._values[result.served.slot]
        details.variation_id = (self._variations[result.served.variation]
                                if result.served.variation >= 0 else None)
        details.is_default_value = False
        details.error_code = ErrorCode.NONE
        details.matched_rule = result.rule if result.rule >= 0 else None
        details.matched_option = result.option if result.option >= 0 else None
        details.user = user
        return details

    def __repr__(self):
        return f"<flagstaff.Config with {len(self._keys)} settings>"


def _acyclic(list edges):
    """
    The nodes on no cycle of the graph `edges` (node -> successors), by
    Tarjan's strongly connected components, without recursion.
    """
    cdef Py_ssize_t count = len(edges), counter = 0
    index = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack = []
    acyclic = []
    for root in range(count):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            successors = edges[node]
            if position < len(successors):
                work.append((node, position + 1))
                target = successors[position]
                if index[target] < 0:
                    work.append((target, 0))
                elif on_stack[target]:
                    low[node] = min(low[node], index[target])
                continue
            # (The build turns off negative indexing: no work[-1] here.)
            if work:
                parent = work[len(work) - 1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) == 1 and node not in edges[node]:
                    acyclic.append(node)
    return acyclic


cdef int _first_value_key(value):
    # The SDK reads a comparison value's type from its first key present.
    for index, typed in enumerate((value.b, value.s, value.i, value.d)):
        if typed is not None:
            return index
    return -1


# One evaluation's context: the C state, attribute buffers on the stack for
# configs with few attribute names, and the resolver's source.
cdef enum:
    _INLINE_ATTRIBUTES = 16

ctypedef struct _Evaluation:
    fs_context ctx
    _Source source
    fs_attr inline_attrs[_INLINE_ATTRIBUTES]
    uint8_t inline_resolved[_INLINE_ATTRIBUTES]
    fs_attr *attrs
    uint8_t *resolved


cdef int _start(_Evaluation *ev, Config config, object user) except -1:
    cdef int32_t count = config._config.attribute_count
    cdef bint has_user = isinstance(user, User)
    ev.source.user = <PyObject *>user
    ev.source.names = <PyObject *>config._attribute_names
    ev.source.error = NULL
    if count <= _INLINE_ATTRIBUTES:
        ev.attrs = ev.inline_attrs
        ev.resolved = ev.inline_resolved
    else:
        ev.attrs = <fs_attr *>PyMem_Malloc(sizeof(fs_attr) * count)
        ev.resolved = <uint8_t *>PyMem_Malloc(count)
        if ev.attrs is NULL or ev.resolved is NULL:
            PyMem_Free(ev.attrs)
            PyMem_Free(ev.resolved)
            raise MemoryError()
    # A user of another type is no user, as in ConfigCat's SDKs.
    fs_context_init(&ev.ctx, &config._config, has_user, _resolve_user,
                    &ev.source, ev.attrs, ev.resolved)
    return 0


cdef object _finish(_Evaluation *ev):
    """Frees the evaluation's memory; returns why it failed, if it did."""
    message = None
    if ev.ctx.message[0]:
        message = (<bytes>ev.ctx.message).decode("utf-8", "replace")
    if ev.source.error is not NULL:
        error = <object>ev.source.error
        Py_DECREF(error)
        ev.source.error = NULL
        message = f"{message} ({type(error).__name__}: {error})"
    fs_context_release(&ev.ctx)
    if ev.attrs is not ev.inline_attrs:
        PyMem_Free(ev.attrs)
        PyMem_Free(ev.resolved)
    return message


cdef void _record_trace(void *sink, int event, int32_t a, int32_t b,
                        int32_t c) noexcept with gil:
    (<list>sink).append((event, a, b, c))


cdef EvaluationDetails _details(str key, default, variation_id, user,
                                str error, error_code):
    cdef EvaluationDetails details = EvaluationDetails.__new__(EvaluationDetails)
    details.key = key
    details.value = default
    details.variation_id = variation_id
    details.is_default_value = True
    details.error = error
    details.error_code = error_code
    details.user = user
    return details


cdef str _missing_key_error(str key, default, tuple keys):
    available = ", ".join(f"'{k}'" for k in keys)
    return (f"Failed to evaluate setting '{key}' (the key was not found in "
            f"config JSON). Returning the `default_value` parameter that you "
            f"specified in your application: '{default}'. Available keys: "
            f"[{available}].")


cdef str _evaluation_error(str key, default, str reason):
    return (f"Failed to evaluate setting '{key}'. ({reason}). Returning the "
            f"`default_value` parameter that you specified in your "
            f"application: '{default}'.")


# ---- Hashing, exposed for flagstaff's own checks against hashlib ---------------

def sha1_digest(data: bytes) -> bytes:
    """
    SHA-1 of `data`, computed by the core's own C implementation.
    """
    cdef fs_sha1 sha
    cdef uint8_t digest[20]
    fs_sha1_init(&sha)
    fs_sha1_update(&sha, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    fs_sha1_final(&sha, digest)
    return (<char *>digest)[:20]


def sha256_digest(data: bytes) -> bytes:
    """
    SHA-256 of `data`, computed by the core's own C implementation.
    """
    cdef fs_sha256 sha
    cdef uint8_t digest[32]
    fs_sha256_init(&sha)
    fs_sha256_update(&sha, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    fs_sha256_final(&sha, digest)
    return (<char *>digest)[:32]


def percentage_bucket(str key, str text) -> int:
    """
    The percentage bucket (0..99) ConfigCat gives `text` for setting `key`.
    """
    cdef bytes prefix = key.encode("utf-8", "surrogatepass")
    cdef bytes value = text.encode("utf-8", "surrogatepass")
    return fs_bucket(PyBytes_AS_STRING(prefix), PyBytes_GET_SIZE(prefix),
                     PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


def canonical_string(value) -> str:
    """
    The text ConfigCat's comparators and percentage options see for a
    non-string attribute value (str, int, float, datetime, list of str).
    """
    cdef fs_scratch scratch
    cdef fs_attr attr
    memset(&attr, 0, sizeof(attr))
    fs_scratch_init(&scratch)
    try:
        _convert(value, &attr, &scratch)
        if not attr.present:
            return None
        return attr.text.ptr[:attr.text.size].decode("utf-8", "surrogatepass")
    finally:
        fs_scratch_release(&scratch)


def sha1_implementation() -> str:
    """
    Which SHA-1 compression the core runs on this CPU: ``"sha-ni"`` (the
    CPU's SHA extensions) or ``"portable"`` (forced by setting
    ``FLAGSTAFF_PORTABLE_SHA1`` in the environment).
    """
    return fs_sha1_implementation().decode()


def stamp_fetch_time(EvaluationDetails details, fetch_time):
    """
    Records when the config that served `details` was downloaded (the client
    does this before handing the details out).
    """
    details.fetch_time = fetch_time
    return details


# ---- Batch evaluation over Arrow columns ---------------------------------------
#
# The batch layer hands over each column as the addresses of its Arrow
# buffers, already normalised to a few layouts; the rows are evaluated here
# without the GIL, one context per row, reading the buffers in place.

cdef enum:
    _COLUMN_NONE = 0        # the attribute has no column: always missing
    _COLUMN_STRING = 1      # utf8: int32 offsets
    _COLUMN_LARGE_STRING = 2    # large_utf8: int64 offsets
    _COLUMN_INT64 = 3
    _COLUMN_FLOAT64 = 4
    _COLUMN_BOOL = 5        # bit-packed
    _COLUMN_TIMESTAMP = 6   # int64 ticks since the epoch, UTC
    _COLUMN_LIST = 7        # large_list<large_utf8> without null items

ctypedef struct _Column:
    int kind
    int64_t offset          # the array's offset, in rows
    const uint8_t *valid    # validity bitmap, or NULL when nothing is null
    const int32_t *offsets32
    const int64_t *offsets64
    const char *data
    const int64_t *integers
    const double *floats
    const uint8_t *bits
    int64_t per_second      # timestamps: ticks per second
    const int64_t *item_offsets   # lists: the child string's offsets
    const char *item_data
    int64_t item_offset           # the child array's offset

ctypedef struct _Rows:
    const _Column *columns  # one per attribute of the config
    int64_t row


cdef inline bint _bit(const uint8_t *bits, int64_t i) noexcept nogil:
    return (bits[i >> 3] >> (i & 7)) & 1


cdef int _format_text(fs_attr *out, fs_scratch *scratch, double value) noexcept nogil:
    cdef char *text = <char *>fs_scratch_alloc(scratch, 32)
    if text is NULL:
        return -1
    out.text.ptr = text
    out.text.size = fs_format_double(value, text)
    return 0


cdef int _resolve_row(void *source, int32_t index, fs_attr *out,
                      fs_scratch *scratch) noexcept nogil:
    # The same view of a value as _convert gives of the Python object that
    # Arrow's to_pylist() makes of it.
    cdef _Rows *rows = <_Rows *>source
    cdef const _Column *column = &rows.columns[index]
    cdef int64_t i = rows.row + column.offset, start, stop, n, k, base
    cdef char *text
    cdef fs_bytes *items
    cdef size_t size

    if column.kind == _COLUMN_NONE:
        return 0
    if column.valid is not NULL and not _bit(column.valid, i):
        return 0
    out.present = 1
    if column.kind == _COLUMN_STRING or column.kind == _COLUMN_LARGE_STRING:
        if column.kind == _COLUMN_STRING:
            start, stop = column.offsets32[i], column.offsets32[i + 1]
        else:
            start, stop = column.offsets64[i], column.offsets64[i + 1]
        out.is_string = 1
        out.text.ptr = column.data + start
        out.text.size = stop - start
        return 0
    if column.kind == _COLUMN_INT64:
        text = <char *>fs_scratch_alloc(scratch, 24)
        if text is NULL:
            return -1
        out.text.ptr = text
        out.text.size = snprintf(text, 24, "%lld", <long long>column.integers[i])
        out.number = out.seconds = <double>column.integers[i]
        out.has_number = out.has_seconds = 1
        return 0
    if column.kind == _COLUMN_FLOAT64:
        out.number = out.seconds = column.floats[i]
        out.has_number = out.has_seconds = 1
        return _format_text(out, scratch, column.floats[i])
    if column.kind == _COLUMN_BOOL:
        if _bit(column.bits, i):
            out.text.ptr, out.text.size, out.number = "True", 4, 1.0
        else:
            out.text.ptr, out.text.size, out.number = "False", 5, 0.0
        out.seconds = out.number
        out.has_number = out.has_seconds = 1
        return 0
    if column.kind == _COLUMN_TIMESTAMP:
        # As timedelta.total_seconds(): ticks over ticks per second,
        # correctly rounded however far from the epoch.
        out.seconds = fs_ticks_to_seconds(column.integers[i], column.per_second)
        out.has_seconds = 1
        return _format_text(out, scratch, out.seconds)
    if column.kind == _COLUMN_LIST:
        start, stop = column.offsets64[i], column.offsets64[i + 1]
        n = stop - start
        items = <fs_bytes *>fs_scratch_alloc(scratch, sizeof(fs_bytes) * (n + 1))
        if items is NULL:
            return -1
        for k in range(n):
            base = column.item_offset + start + k
            items[k].ptr = column.item_data + column.item_offsets[base]
            items[k].size = column.item_offsets[base + 1] - column.item_offsets[base]
        out.has_list = 1
        out.items = items
        out.item_count = n
        size = fs_format_string_list(items, n, NULL, 0)
        text = <char *>fs_scratch_alloc(scratch, size + 1)
        if text is NULL:
            return -1
        out.text.ptr = text
        out.text.size = fs_format_string_list(items, n, text, size + 1)
        return 0
    return 0


@cython.final
cdef class BatchPlan:
    """
    Columns bound to a config's attributes and a list of setting keys, ready
    to evaluate ranges of rows without the GIL (from several threads at
    once: each range writes only its own rows of the results).

    Built by :mod:`flagstaff.batch`, which normalises the Arrow columns and
    keeps them alive while the plan runs.
    """

    cdef Config config
    cdef _Column *columns
    cdef int32_t *indexes       # the settings to evaluate
    cdef int32_t key_count
    cdef readonly int64_t rows
    cdef readonly list slots         # per key: int32 value slots by row
    cdef readonly list variations    # per key: int32 variation slots by row
    cdef int32_t **slot_out
    cdef int32_t **variation_out
    cdef int32_t *failed        # per key: the slot written for a failure
    cdef int32_t no_variation   # the variation slot written for none
    cdef object _keep

    def __cinit__(self, Config config, dict columns, list keys, int64_t rows,
                  bint variation_ids):
        cdef int32_t count = config._config.attribute_count
        cdef int32_t i
        self.config = config
        self.rows = rows
        self.key_count = len(keys)
        self.columns = <_Column *>calloc(count, sizeof(_Column))
        self.indexes = <int32_t *>calloc(self.key_count + 1, sizeof(int32_t))
        self.slot_out = <int32_t **>calloc(self.key_count + 1, sizeof(int32_t *))
        self.variation_out = <int32_t **>calloc(self.key_count + 1, sizeof(int32_t *))
        self.failed = <int32_t *>calloc(self.key_count + 1, sizeof(int32_t))
        if (self.columns is NULL or self.indexes is NULL or self.slot_out is NULL
                or self.variation_out is NULL or self.failed is NULL):
            raise MemoryError()

        for i, key in enumerate(keys):
            self.indexes[i] = config._index[key]
        for name, spec in columns.items():
            index = config._attribute_index.get(name)
            if index is not None:
                _bind_column(&self.columns[<int32_t>index], spec)

        self.no_variation = len(config._variations)
        self.slots, self.variations = [], []
        cdef unsigned char[::1] view
        for i in range(self.key_count):
            buffer = bytearray(4 * rows if rows else 4)
            view = buffer
            self.slots.append(buffer)
            self.slot_out[i] = <int32_t *>&view[0]
            self.failed[i] = len(config._values)
            if variation_ids:
                buffer = bytearray(4 * rows if rows else 4)
                view = buffer
                self.variations.append(buffer)
                self.variation_out[i] = <int32_t *>&view[0]
        self._keep = columns

    def __dealloc__(self):
        free(self.columns)
        free(self.indexes)
        free(self.slot_out)
        free(self.variation_out)
        free(self.failed)

    def run(self, int64_t start, int64_t stop):
        """
        Evaluates rows [start, stop) into the result buffers, without the
        GIL. A row whose evaluation fails gets the slot after the last value
        (the caller puts its default there); a row served no variation id
        gets the slot after the last variation id.
        """
        if not 0 <= start <= stop <= self.rows:
            raise IndexError(f"rows {start}..{stop} of {self.rows}")
        cdef int status
        with nogil:
            status = _evaluate_rows(self, start, stop)
        if status < 0:
            raise MemoryError()

    @property
    def values(self):
        """The config's value objects by slot."""
        return self.config._values

    @property
    def variation_names(self):
        """The config's variation ids by slot."""
        return self.config._variations


cdef int _bind_column(_Column *column, tuple spec) except -1:
    # spec: (kind, offset, validity, first, second, third, item offset)
    kind, offset, valid, first, second, third, item_offset = spec
    column.kind = kind
    column.offset = offset
    column.valid = <const uint8_t *><size_t>valid
    if kind == _COLUMN_STRING:
        column.offsets32 = <const int32_t *><size_t>first
        column.data = <const char *><size_t>second
    elif kind == _COLUMN_LARGE_STRING:
        column.offsets64 = <const int64_t *><size_t>first
        column.data = <const char *><size_t>second
    elif kind == _COLUMN_INT64:
        column.integers = <const int64_t *><size_t>first
    elif kind == _COLUMN_TIMESTAMP:
        column.integers = <const int64_t *><size_t>first
        column.per_second = second
    elif kind == _COLUMN_FLOAT64:
        column.floats = <const double *><size_t>first
    elif kind == _COLUMN_BOOL:
        column.bits = <const uint8_t *><size_t>first
    elif kind == _COLUMN_LIST:
        column.offsets64 = <const int64_t *><size_t>first
        column.item_offsets = <const int64_t *><size_t>second
        column.item_data = <const char *><size_t>third
        column.item_offset = item_offset
    elif kind != _COLUMN_NONE:
        raise ValueError(f"unknown column layout {kind}")
    return 0


cdef int _evaluate_rows(BatchPlan plan, int64_t start, int64_t stop) noexcept nogil:
    cdef const fs_config *config = &plan.config._config
    cdef int32_t count = config.attribute_count, k
    cdef fs_attr *attrs = <fs_attr *>malloc(sizeof(fs_attr) * (count + 1))
    cdef uint8_t *resolved = <uint8_t *>malloc(count + 1)
    cdef fs_context *ctx = <fs_context *>malloc(sizeof(fs_context))
    cdef fs_result result
    cdef _Rows rows
    cdef int64_t row
    if attrs is NULL or resolved is NULL or ctx is NULL:
        free(attrs)
        free(resolved)
        free(ctx)
        return -1

    rows.columns = plan.columns
    for row in range(start, stop):
        rows.row = row
        # Every row is a user, even one without an identifier.
        fs_context_init(ctx, config, 1, _resolve_row, &rows, attrs, resolved)
        for k in range(plan.key_count):
            if fs_evaluate(ctx, plan.indexes[k], &result) == 0:
                plan.slot_out[k][row] = result.served.slot
                if plan.variation_out[k] is not NULL:
                    plan.variation_out[k][row] = (
                        result.served.variation if result.served.variation >= 0
                        else plan.no_variation)
            else:
                plan.slot_out[k][row] = plan.failed[k]
                if plan.variation_out[k] is not NULL:
                    plan.variation_out[k][row] = plan.no_variation
        fs_context_release(ctx)
    free(attrs)
    free(resolved)
    free(ctx)
    return 0
