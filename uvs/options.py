"""Options declared once: a table that every trainer fills, from which checks and flags derive.

Each `Option` says its name (the original's keyword: `dispFreq`, `reload_`), type, default,
help, choices, a check, and its `kind`:

- `SHAPE`: changes parameter shapes or the vocabulary (dims, encoder, data); refused on
  resume when it contradicts the checkpoint;
- `FIXED`: defines what is trained (loss, optimizer, batches, seed); also refused on resume
  when different, since the run would no longer be the one checkpointed;
- `SCHEDULE`: how long and how the run goes on (epochs, frequencies, learning rate, paths);
  may change on resume, and the change is announced.

`OptionTable.resolve` layers defaults, then a recipe's preset, then what was given (None =
not given), and checks the result. The command line derives its flags from the same table
(`uvs.cli.common.table_options`); this module knows no command line.
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from uvs.errors import UVSError

SHAPE, FIXED, SCHEDULE = "shape", "fixed", "schedule"


@dataclass(frozen=True)
class Check:
    """A test on a value and what it demands, for the message: `dim must be <says>`."""

    test: Callable[[Any], bool]
    says: str


POSITIVE = Check(lambda v: v >= 1, "a positive integer")
NON_NEGATIVE = Check(lambda v: math.isfinite(v) and v >= 0, "a finite number ≥ 0")
POSITIVE_NUMBER = Check(lambda v: math.isfinite(v) and v > 0, "a positive number")
PAIRS = Check(lambda v: v >= 2, "at least 2 for a contrastive loss")


@dataclass(frozen=True)
class Option:
    """One option: declared once, with everything the checks, the help and resume need.

    type: int, float, str or bool; path: "file" or "dir" when the string names one;
    cli: False for options that the command line does not offer.
    """

    name: str
    type: type
    default: Any
    help: str
    kind: str = FIXED
    choices: tuple | None = None
    check: Check | None = None
    path: str = ""
    cli: bool = True

    @property
    def flag(self) -> str:
        """The command-line spelling: dispFreq -> --disp-freq, reload_ -> --reload."""
        words = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", self.name).strip("_").lower()
        return "--" + words.replace("_", "-")


class OptionTable:
    """A trainer's options, its recipes (named presets) and its cross-option check."""

    def __init__(self, options: Iterable[Option], recipes: dict[str, dict] | None = None,
                 check: Callable[[dict], None] | None = None):
        self.options = OrderedDict((o.name, o) for o in options)
        self.recipes = recipes or {}
        self._check = check
        for recipe, preset in self.recipes.items():
            unknown = set(preset) - set(self.options)
            if unknown:
                raise ValueError(f"recipe {recipe!r} sets unknown options {sorted(unknown)}")

    def __getitem__(self, name: str) -> Option:
        return self.options[name]

    def __iter__(self):
        return iter(self.options.values())

    def defaults(self) -> OrderedDict:
        return OrderedDict((o.name, o.default) for o in self)

    def recipes_changing(self, name: str) -> dict[str, Any]:
        """{recipe: value} for the recipes whose preset differs from the default."""
        default = self.options[name].default
        return {r: p[name] for r, p in self.recipes.items() if name in p and p[name] != default}

    def describe_default(self, name: str) -> str:
        """'0.2; order: 0.05': the default, then what recipes change it to."""
        o = self.options[name]
        text = "none" if o.default is None else str(o.default)
        changes = self.recipes_changing(name)
        return text + "".join(f"; {r}: {v}" for r, v in changes.items())

    def given(self, values: dict) -> OrderedDict:
        """The options actually given (not None), checked for names and types."""
        unknown = set(values) - set(self.options)
        if unknown:
            raise UVSError(None, f"unknown option(s): {', '.join(sorted(unknown))}")
        return OrderedDict((k, self._typed(self.options[k], v))
                           for k, v in values.items() if v is not None)

    def resolve(self, values: dict, recipe_key: str = "recipe") -> OrderedDict:
        """Defaults, then the recipe's preset, then the options given; checked."""
        given = self.given(values)
        options = self.defaults()
        if recipe_key in self.options:
            recipe = given.get(recipe_key, options[recipe_key])
            options.update(self.recipes.get(recipe, {}))
        options.update(given)
        self.check(options)
        return options

    def check(self, options: dict) -> None:
        """Each option's choices and check, then the table's cross-option check."""
        for o in self:
            value = options.get(o.name)
            if value is None:
                continue
            if o.choices is not None and value not in o.choices:
                bad(f"{o.name} {value!r} (expected {', '.join(map(str, o.choices))})")
            if o.check is not None and not o.check.test(value):
                bad(f"{o.name} must be {o.check.says} (got {value!r})")
        if self._check is not None:
            self._check(options)

    def check_all(self, options: dict) -> None:
        """Options from a file (a checkpoint's) as if given: each known one's type, then
        `check`."""
        for name, value in options.items():
            if name in self.options and value is not None:
                self._typed(self.options[name], value)
        self.check(options)

    def on_resume(self, trained: dict, given: dict) -> tuple[OrderedDict, list[str]]:
        """(schedule options that change, as {name: (was, now)}; conflicts, described).

        `given` holds the options given again on resume; shape and fixed options that
        differ from the checkpoint's are conflicts.
        """
        changes, conflicts = OrderedDict(), []
        for name, value in given.items():
            was = trained.get(name, self.options[name].default)
            if value == was:
                continue
            if self.options[name].kind == SCHEDULE:
                changes[name] = (was, value)
            else:
                conflicts.append(f"{name} = {value!r} (trained with {was!r})")
        return changes, conflicts

    @staticmethod
    def _typed(o: Option, value):
        if o.type is bool:
            ok = isinstance(value, bool)
        elif o.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif o.type is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        else:
            if o.path and isinstance(value, os.PathLike):
                value = os.fspath(value)
            ok = isinstance(value, o.type)
        if not ok:
            bad(f"{o.name} must be of type {o.type.__name__} (got {value!r})")
        return value


# What every trainer has, declared once; a trainer's table takes them with `common`.
COMMON = OrderedDict((o.name, o) for o in [
    Option("data", str, "f8k", "Data set name: f8k, f30k, coco, sample, ...", SHAPE),
    Option("data_dir", str, None, "Folder holding the data sets (default: $UVS_DATA, "
           "else ./data).", SCHEDULE, path="dir"),
    Option("dim_word", int, 300, "Word vector size.", SHAPE, check=POSITIVE),
    Option("max_epochs", int, 15, "Epochs to train for.", SCHEDULE, check=POSITIVE),
    Option("dispFreq", int, 10, "Updates between progress lines.", SCHEDULE,
           check=POSITIVE),
    Option("decay_c", float, 0.0, "Weight decay (L2 on every parameter).",
           check=NON_NEGATIVE),
    Option("maxlen_w", int, 100, "Drop captions this many words long or longer.",
           check=POSITIVE),
    Option("optimizer", str, "adam", "adam: as released (its bias correction included); "
           "adam_textbook: Kingma & Ba.", choices=("adam", "adam_textbook")),
    Option("validFreq", int, 100, "Updates between dev evaluations.", SCHEDULE,
           check=POSITIVE),
    Option("lrate", float, 0.0002, "Learning rate.", SCHEDULE, check=POSITIVE_NUMBER),
    Option("reload_", bool, False, "Resume from SAVETO's last checkpoint.", SCHEDULE),
    Option("seed", int, 1234, "Random seed (initialisation and batch order)."),
    Option("cnn", str, None, "Image features: the 1-crop files, or '10crop'.", cli=False),
])


def common(name: str, **changes) -> Option:
    """The common option `name`, with a trainer's own `changes` (default=..., help=...)."""
    return replace(COMMON[name], **changes)


def check_saveto(options: dict) -> None:
    """saveto, when given, names a .npz file."""
    if options["saveto"] is not None and not str(options["saveto"]).endswith(".npz"):
        bad(f"saveto must name a .npz file (got {options['saveto']!r})")


def bad(problem: str) -> None:
    """Raise the one-line error for a bad option."""
    raise UVSError(None, f"bad option: {problem}")
