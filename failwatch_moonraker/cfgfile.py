"""The cfg file's syntax and its typed getters (Moonraker's ``ConfigHelper``, for us).

The file uses Moonraker's flavour of INI:

* ``[section]`` headers and ``option: value`` (or ``option = value``) lines;
* ``#`` and ``;`` start a full-line comment; an inline comment needs whitespace
  before the ``#``/``;`` (so ``http://host/#frag`` keeps its ``#``), and ``\\#``
  yields a literal ``#`` even after whitespace;
* values continue on following indented lines;
* no interpolation, and duplicate sections or options are errors.

:mod:`configparser` does the tokenising (:func:`read_sections`).  On top of it,
:class:`Section` offers one typed getter per kind of option.  Every getter records
the option it reads, so that the loader (:mod:`failwatch_moonraker.config`) can report
every option nobody asked for as unknown.  Problems are collected
(:class:`Problems`), not raised one by one: a single :class:`ConfigError` lists all
of them, one per line.  The values of secret options never appear in a message.
"""

from __future__ import annotations

import configparser
import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeVar, overload

# Stand-in for an escaped "\#" while configparser strips inline comments.
_ESCAPED_HASH = "\ue000"

# A section name configparser will never see, so that "[DEFAULT]" is an ordinary
# (unknown) section instead of silently feeding defaults into every section.
_NO_DEFAULT_SECTION = "\ue001no-default\ue001"


class ConfigError(Exception):
    """The configuration is unusable.

    ``str(error)`` lists every problem found, one per line; :attr:`problems` holds
    them as a tuple.
    """

    def __init__(self, problems: str | Iterable[str]) -> None:
        if isinstance(problems, str):
            problems = (problems,)
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


class _Missing:
    """Type of :data:`REQUIRED`: the option has no default."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Missing()

T = TypeVar("T")

_BOOLEANS: Final[Mapping[str, bool]] = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}
INT_RE = re.compile(r"[+-]?[0-9]+")
# No option needs more; a larger window or count would overflow a float in the core.
INT_LIMIT: Final = 10**15


def number(value: float) -> str:
    """Format a bound for a message: ``0.1``, ``3600``."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def show(value: str) -> str:
    """Quote a (non-secret) value for a message, shortened if long."""
    if len(value) > 80:
        value = value[:77] + "..."
    return repr(value)


class Problems:
    """Collects error messages for one file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.messages: list[str] = []

    def file(self, message: str) -> None:
        self.messages.append(f"{self.path}: {message}")

    def section(self, section: str, message: str) -> None:
        self.messages.append(f"{self.path}: [{section}]: {message}")

    def option(self, section: str, option: str, message: str) -> None:
        self.messages.append(f"{self.path}: [{section}] {option}: {message}")


class Section:
    """Typed access to one section; a missing section behaves like an empty one.

    Every getter records the option as known (see :attr:`known`), whether or not it
    is set, so the loader can report the options nobody read.  A getter without a
    default makes the option required.  Problems are recorded, not raised; a getter
    whose value is bad returns its default (or a dummy when required; ``getlist``
    returns the valid items) so that the loader can carry on and report everything
    at once, and :meth:`ok` tells cross-option checks whether an option came
    through cleanly.
    """

    def __init__(
        self,
        name: str,
        values: Mapping[str, str] | None,
        problems: Problems,
        secret: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.present = values is not None
        self._values: dict[str, str] = dict(values or {})
        self._problems = problems
        self._secret = frozenset(secret)
        self.known: list[str] = []
        self._failed: set[str] = set()

    # -- helpers --------------------------------------------------------------

    def _lookup(self, option: str) -> str | None:
        if option not in self.known:
            self.known.append(option)
        return self._values.get(option)

    def error(self, option: str, message: str) -> None:
        """Record a problem with ``option``."""
        self._failed.add(option)
        self._problems.option(self.name, option, message)

    def ok(self, option: str) -> bool:
        """True if no problem was recorded for ``option``."""
        return option not in self._failed

    def is_set(self, option: str) -> bool:
        return option in self._values

    def raw(self, option: str) -> str | None:
        """The raw text of ``option`` (None if unset); does not mark it as known."""
        return self._values.get(option)

    def _got(self, option: str, raw: str) -> str:
        if option in self._secret:
            return " (value not shown)"
        return f", got {show(raw)}"

    def _absent(self, option: str, default: T | _Missing, dummy: T) -> T:
        if isinstance(default, _Missing):
            self.error(option, "required option is missing")
            return dummy
        return default

    # -- getters --------------------------------------------------------------

    def get(
        self, option: str, default: str | _Missing = REQUIRED, *, multiline: bool = False
    ) -> str:
        """A string.  Unless ``multiline``, the value must fit on one line."""
        raw = self._lookup(option)
        if raw is None:
            return self._absent(option, default, "")
        if not multiline and "\n" in raw:
            self.error(option, "must be a single line" + self._got(option, raw))
            return default if isinstance(default, str) else ""
        return raw

    def getint(
        self,
        option: str,
        default: int | _Missing = REQUIRED,
        minval: int | None = None,
        maxval: int | None = None,
    ) -> int:
        raw = self._lookup(option)
        if raw is None:
            return self._absent(option, default, 0)
        fallback = default if isinstance(default, int) else 0
        if not INT_RE.fullmatch(raw.strip()):
            desc = _describe("an integer", minval, maxval, None)
            self.error(option, f"must be {desc}{self._got(option, raw)}")
            return fallback
        text = raw.strip()
        digits = text.lstrip("+-").lstrip("0") or "0"
        sign = -1 if text.startswith("-") else 1
        if len(digits) > len(str(INT_LIMIT)):  # int() refuses more than 4300 digits
            value = sign * (INT_LIMIT + 1)
        else:
            value = sign * int(digits)
        if value < -INT_LIMIT and minval is None:
            self.error(option, f"must be an integer >= {-INT_LIMIT}{self._got(option, raw)}")
            return fallback
        if value > INT_LIMIT and maxval is None:
            self.error(option, f"must be an integer <= {INT_LIMIT}{self._got(option, raw)}")
            return fallback
        if minval is not None and value < minval:
            self.error(option, f"must be an integer >= {minval}{self._got(option, raw)}")
            return fallback
        if maxval is not None and value > maxval:
            self.error(option, f"must be an integer <= {maxval}{self._got(option, raw)}")
            return fallback
        return value

    def getfloat(
        self,
        option: str,
        default: float | _Missing = REQUIRED,
        minval: float | None = None,
        maxval: float | None = None,
        above: float | None = None,
    ) -> float:
        raw = self._lookup(option)
        if raw is None:
            return float(self._absent(option, default, 0.0))
        fallback = float(default) if isinstance(default, (int, float)) else 0.0
        try:
            value = float(raw.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            desc = _describe("a number", minval, maxval, above)
            self.error(option, f"must be {desc}{self._got(option, raw)}")
            return fallback
        if minval is not None and value < minval:
            self.error(option, f"must be a number >= {number(minval)}{self._got(option, raw)}")
            return fallback
        if above is not None and value <= above:
            self.error(option, f"must be a number > {number(above)}{self._got(option, raw)}")
            return fallback
        if maxval is not None and value > maxval:
            self.error(option, f"must be a number <= {number(maxval)}{self._got(option, raw)}")
            return fallback
        return value

    @overload
    def getboolean(self, option: str, default: bool | _Missing = ...) -> bool: ...

    @overload
    def getboolean(self, option: str, default: None) -> bool | None: ...

    def getboolean(self, option: str, default: bool | None | _Missing = REQUIRED) -> bool | None:
        """true/false, yes/no, on/off, 1/0 (any case).

        With a ``None`` default an empty value means "not set" and gives ``None``.
        """
        raw = self._lookup(option)
        if raw is None or (default is None and not raw.strip()):
            return self._absent(option, default, False)
        value = _BOOLEANS.get(raw.strip().lower())
        if value is None:
            self.error(
                option,
                "must be a boolean (true/false, yes/no, on/off, 1/0)" + self._got(option, raw),
            )
            return default if isinstance(default, bool) else False
        return value

    @overload
    def getchoice(
        self, option: str, choices: Sequence[str], default: str | _Missing = ...
    ) -> str: ...

    @overload
    def getchoice(
        self, option: str, choices: Mapping[str, T], default: T | _Missing = ...
    ) -> T: ...

    def getchoice(
        self,
        option: str,
        choices: Mapping[str, object] | Sequence[str],
        default: object = REQUIRED,
    ) -> object:
        """One of ``choices`` (compared case-insensitively).

        ``choices`` is either a sequence of spellings (the canonical spelling is
        returned) or a mapping from spelling to the value returned.  With a ``None``
        default an empty value means "not set" and gives ``None``.
        """
        mapping: Mapping[str, object] = (
            choices if isinstance(choices, Mapping) else {c: c for c in choices}
        )
        raw = self._lookup(option)
        dummy = next(iter(mapping.values()))
        if raw is None or (default is None and not raw.strip()):
            return self._absent(option, default, dummy)
        wanted = raw.strip().lower()
        for spelling, value in mapping.items():
            if spelling.lower() == wanted:
                return value
        allowed = ", ".join(mapping)
        self.error(
            option,
            f"must be one of: {allowed}; got {show(raw)}"
            if option not in self._secret
            else f"must be one of: {allowed}",
        )
        return dummy if isinstance(default, _Missing) else default

    def getlist(
        self,
        option: str,
        default: Sequence[str] | _Missing = REQUIRED,
        allowed: Sequence[str] | None = None,
        *,
        kind: str = "item",
    ) -> tuple[str, ...]:
        """A comma- (or newline-) separated list; empty items are ignored.

        With ``allowed``, items are matched case-insensitively against it and
        returned in its spelling.  An item may appear only once.  On problems the
        valid items are still returned, so that checks across options can run too.
        """
        raw = self._lookup(option)
        if raw is None:
            return tuple(self._absent(option, default, ()))
        items = [item.strip() for item in re.split(r"[,\n]", raw)]
        result: list[str] = []
        for item in items:
            if not item:
                continue
            if allowed is not None:
                canonical = next((a for a in allowed if a.lower() == item.lower()), None)
                if canonical is None:
                    shown = show(item) if option not in self._secret else "(not shown)"
                    self.error(option, f"unknown {kind} {shown}; allowed: {', '.join(allowed)}")
                    continue
                item = canonical
            if item in result:
                shown = show(item) if option not in self._secret else "(not shown)"
                self.error(option, f"{kind} {shown} is listed more than once")
                continue
            result.append(item)
        return tuple(result)


def _describe(kind: str, minval: float | None, maxval: float | None, above: float | None) -> str:
    bounds = []
    if minval is not None:
        bounds.append(f">= {number(minval)}")
    if above is not None:
        bounds.append(f"> {number(above)}")
    if maxval is not None:
        bounds.append(f"<= {number(maxval)}")
    return f"{kind} {' and '.join(bounds)}" if bounds else kind


class Context:
    def __init__(self, path: str) -> None:
        self.path = path
        # Directory that relative paths in the file are resolved against (None for
        # text that did not come from a file, e.g. "<string>").
        self.base_dir = None if path.startswith("<") else os.path.dirname(path)

    def file_path(self, value: str) -> str:
        if not value:
            return value
        value = os.path.expanduser(value)
        if self.base_dir is not None and not os.path.isabs(value):
            value = os.path.normpath(os.path.join(self.base_dir, value))
        return value


def _new_parser() -> configparser.ConfigParser:
    return configparser.ConfigParser(
        delimiters=(":", "="),
        comment_prefixes=("#", ";"),
        inline_comment_prefixes=("#", ";"),  # configparser requires whitespace before them
        strict=True,
        interpolation=None,
        default_section=_NO_DEFAULT_SECTION,
    )


def read_sections(text: str, problems: Problems) -> dict[str, dict[str, str]] | None:
    """Tokenise ``text``; None (with problems recorded) if it is not valid INI.

    configparser stops at the first duplicate or missing header, so those are
    reported alone.  Offending lines are named by number only: they may hold a
    secret.
    """
    parser = _new_parser()
    try:
        parser.read_string(text.replace("\\#", _ESCAPED_HASH), source=problems.path)
    except configparser.DuplicateSectionError as exc:
        problems.file(
            f"line {exc.lineno}: [{exc.section}]: duplicate section; "
            "each section may appear only once"
        )
        return None
    except configparser.DuplicateOptionError as exc:
        problems.file(
            f"line {exc.lineno}: [{exc.section}] {exc.option}: duplicate option; "
            "each option may appear only once per section"
        )
        return None
    except configparser.MissingSectionHeaderError as exc:
        problems.file(
            f"line {exc.lineno}: option outside any section; put it below a [section] header"
        )
        return None
    except configparser.ParsingError as exc:
        for lineno, _line in exc.errors:
            problems.file(
                f"line {lineno}: cannot parse this line; expected '[section]', "
                "'option: value', a comment, or an indented continuation of a value"
            )
        return None
    except configparser.Error as exc:  # pragma: no cover - defensive
        problems.file(f"cannot parse the file ({type(exc).__name__})")
        return None
    return {
        name: {
            option: value.replace(_ESCAPED_HASH, "#")
            for option, value in parser.items(name, raw=True)
        }
        for name in parser.sections()
    }


def hint(word: str, candidates: Sequence[str], aliases: Mapping[str, str]) -> str | None:
    lowered = word.lower()
    if lowered in aliases:
        return aliases[lowered]
    if lowered in candidates and lowered != word:
        return lowered
    matches = difflib.get_close_matches(lowered, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
