"""Config-file mistakes that jsonargparse reports without the file or the key, said in one line where the
user wrote them (``init_arg_problem`` in ``parsing`` does the same for a model's or data's arguments).

litforge fit --config my.yaml
litforge: error: my.yaml: trainer.max_step: no such option (did you mean trainer.max_steps?)
litforge: error: my.yaml: trainer.callbacks[0].init_args.patiense: EarlyStopping has no argument 'patiense' (did you mean patience?)
litforge: error: my.yaml: data: batch_size goes under init_args ({class_path: ..., init_args: {batch_size: ...}})
litforge: error: my.yaml: trainer.max_epochs: expected int, got 'one'
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from litforge._compat.argparse import parser_actions
from litforge.engine.config_sources import CLASS_SECTIONS, CommandLine, flag_values, read_config_file

_SECTION_KEYS = {"class_path", "init_args", "dict_kwargs", "__path__"}
_NOT_ACCEPTED_OPTION = re.compile(r"does not accept option '([\w.]+)'")
_NOT_ACCEPTED_ARG = re.compile(r"Option '(\w+)' is not accepted$")
# where a short class name of a trainer component is found (``EarlyStopping``, ``CSVLogger``)
_COMPONENT_MODULES = (
    "lightning.pytorch.callbacks",
    "lightning.pytorch.loggers",
    "litforge.callbacks",
    "litforge.loggers",
)


def config_mistake(message: str, line: CommandLine, parser: Any) -> str | None:
    """One line for an unknown option, class or callback/logger argument behind parser ``message``, where
    ``line`` gave it; ``None`` when it is not one of these (``misplaced_init_args`` is asked first)."""
    return (
        unknown_option(message, line, parser)
        or unknown_component_arg(message, line)
        or unusable_class_in_file(message, line)
        or misplaced_value(message, line)
    )


# Trainer settings Lightning takes without a check, then divides by or loops on: (name, valid, wording)
_TRAINER_LIMITS: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("accumulate_grad_batches", lambda v: v >= 1, "at least 1"),
    (
        "check_val_every_n_epoch",
        lambda v: v >= 1,
        "at least 1 (or null: validate by val_check_interval only)",
    ),
    ("gradient_clip_val", lambda v: v >= 0, "at least 0 (0 or null: no clipping)"),
    ("log_every_n_steps", lambda v: v >= 1, "at least 1"),
    ("max_epochs", lambda v: v >= -1, "at least 0 (-1 or null: no limit)"),
    ("max_steps", lambda v: v >= -1, "at least 0 (-1: no limit)"),
    ("min_epochs", lambda v: v >= 0, "at least 0"),
    ("num_sanity_val_steps", lambda v: v >= -1, "at least 0 (-1: the whole validation set)"),
    ("val_check_interval", lambda v: v > 0, "above 0 (a fraction of an epoch or a number of batches)"),
)


def trainer_value_problem(trainer: Any, line: CommandLine) -> str | None:
    """A trainer setting out of range that Lightning would only trip over later (``ZeroDivisionError`` in the
    user's ``configure_optimizers``, a silently ignored ``accumulate_grad_batches -1``), placed where the
    user gave it: ``--trainer.accumulate_grad_batches: must be at least 1, got '0'``."""
    for name, valid, wording in _TRAINER_LIMITS:
        value = trainer.get(name) if trainer is not None else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not valid(value):
            message = f"config key \"trainer.{name}\": must be {wording}, got '{value}'"
            return misplaced_value(message, line) or message.replace("config key ", "", 1)
    return None


_BAD_VALUE = re.compile(r"""^config key "([\w.]+)": (.*?(?:, got '(.*)')?)$""")


def misplaced_value(message: str, line: CommandLine) -> str | None:
    """``config key "trainer.max_epochs": expected int, got 'one'`` -> where that value was given: the typed
    ``--trainer.max_epochs`` flag, or the config file that holds it (the last one giving that value)."""
    bad = _BAD_VALUE.match(message.strip())
    if not bad:
        return None
    key, detail, given = bad.groups()
    for flag in (f"--{key}", f"--{key}+"):
        typed = line.typed_value(flag)
        if typed is not None and given in (None, typed):
            return f"{flag}: {detail}{_quoting_hint(flag, typed, detail)}"
    if "." not in key:  # an init arg of a class inside a section: --trainer.callbacks.filename {epoch}
        for flag, typed in reversed(flag_values(line.args)):
            parts = [part for part in flag.removeprefix("--").split(".") if part != "init_args"]
            if len(parts) > 2 and parts[0] == "trainer" and parts[-1] == key and given in (None, typed):
                return f"{flag} {typed}: {detail}{_quoting_hint(flag, typed, detail)}"
    for path in reversed(line.config_files):
        config = read_config_file(path)
        value = _value_at(config, key)
        if value is not _ABSENT and (given is None or str(value) == given):
            return f"{path}: {key}: {detail}"
        if "." not in key:  # a callback's or logger's init arg: trainer.callbacks[0].init_args.patience
            for place, node in _class_places(config):
                arguments = node.get("init_args")
                if isinstance(arguments, dict) and key in arguments and given in (None, str(arguments[key])):
                    return f"{path}: {place}.init_args.{key}: {detail}"
    return None


def _quoting_hint(flag: str, typed: str, detail: str) -> str:
    """A typed text that YAML reads as a mapping or list (``{epoch}``, ``[a]``) where a string is expected:
    how to give it (jsonargparse keeps quotes typed around it as part of the string)."""
    if not detail.startswith("expected str"):
        return ""
    try:
        value = yaml.safe_load(typed)
    except yaml.YAMLError:
        return ""
    if not isinstance(value, (dict, list)):
        return ""
    section, _, name = flag.removeprefix("--").replace(".init_args.", ".").rpartition(".")
    return (
        f"; YAML reads {typed} as a {'mapping' if isinstance(value, dict) else 'list'}: give it as "
        f"--{section}.init_args '{json.dumps({name: typed})}' or in a config file"
    )


_ABSENT = object()


def _value_at(config: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in a config mapping, or ``_ABSENT``."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def configured_place(cls: type, line: CommandLine) -> str | None:
    """Where a config file names class ``cls`` (``my.yaml: trainer.callbacks[0]``): the last file that
    does, by its full path or its short name; ``None`` when no file names it."""
    names = {cls.__name__, f"{cls.__module__}.{cls.__qualname__}"}
    for path in reversed(line.config_files):
        for where, node in _class_places(read_config_file(path)):
            class_path = node.get("class_path")
            if class_path in names or (
                isinstance(class_path, str) and class_path.endswith(f".{cls.__name__}")
            ):
                return f"{path}: {where}"
    return None


_UNUSABLE_CLASS = re.compile(r"^config key \"[\w.]+\": (cannot use class '([\w.]+)'.*)$")


def unusable_class_in_file(message: str, line: CommandLine) -> str | None:
    """``config key "trainer.callbacks": cannot use class 'x.Y'`` -> the file and key path that name it."""
    unusable = _UNUSABLE_CLASS.match(message.strip())
    if not unusable:
        return None
    detail, class_path = unusable.groups()
    for path in reversed(line.config_files):
        for where, node in _class_places(read_config_file(path)):
            if node.get("class_path") == class_path:
                return f"{path}: {where}.class_path: {detail}"
    return None


def misplaced_init_args(line: CommandLine) -> str | None:
    """``model: {class_path: X, lr: 0.05}`` (or a callback, a logger): arguments beside ``class_path`` instead
    of under ``init_args`` (jsonargparse blames another section, or says ``Option 'class_path' is not
    accepted``); and ``init_arg:`` / ``clas_path:``, misspelt."""
    for path in line.config_files:
        config = read_config_file(path)
        if misspelt := _misspelt_section_key(config):
            return f"{path}: {misspelt}"
        for where, node in _class_places(config):
            stray = [key for key in node if key not in _SECTION_KEYS]
            if stray:
                return (
                    f"{path}: {where}: {', '.join(stray)} {'goes' if len(stray) == 1 else 'go'} under "
                    f"init_args ({{class_path: ..., init_args: {{{stray[0]}: ...}}}})"
                )
    return None


def _misspelt_section_key(config: dict[str, Any]) -> str | None:
    """``model.init_arg: no such key (did you mean init_args?)`` for a ``class_path``/``init_args`` typo in the
    model, the data, a callback or a logger."""
    sections = [(section, config.get(section)) for section in CLASS_SECTIONS]
    nodes = [(where, node) for where, node in sections if isinstance(node, dict)]
    for where, node in nodes + list(_class_nodes(config.get("trainer"), "trainer", typo_ok=True)):
        for key in node:
            meant = difflib.get_close_matches(str(key), sorted(_SECTION_KEYS), n=1, cutoff=0.75)
            if key not in _SECTION_KEYS and meant:
                return f"{where}.{key}: no such key (did you mean {meant[0]}?)"
    return None


def _class_places(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(key path, node)`` of each mapping with a ``class_path`` in a config: ``model``, ``data``, and the
    callbacks and loggers under ``trainer``."""
    sections = [(section, config.get(section)) for section in CLASS_SECTIONS]
    found = [(where, node) for where, node in sections if isinstance(node, dict) and "class_path" in node]
    return found + list(_class_nodes(config.get("trainer"), "trainer"))


def _class_nodes(node: Any, where: str, typo_ok: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(key path, node)`` of each mapping with a ``class_path`` under ``trainer`` (callbacks, loggers);
    ``typo_ok``: also each list item that is a mapping (a callback whose ``class_path`` is misspelt)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            if typo_ok and isinstance(item, dict) and not isinstance(item.get("class_path"), str):
                yield f"{where}[{index}]", item
            else:
                yield from _class_nodes(item, f"{where}[{index}]", typo_ok)
    elif isinstance(node, dict):
        if isinstance(node.get("class_path"), str):
            yield where, node
            return
        for key, child in node.items():
            yield from _class_nodes(child, f"{where}.{key}", typo_ok)


def unknown_option(message: str, line: CommandLine, parser: Any) -> str | None:
    """``Subcommand 'fit' does not accept option 'trainer.max_step'`` -> the file that holds it and the
    closest option (``trainr.max_steps`` -> ``trainer``)."""
    unknown = _NOT_ACCEPTED_OPTION.search(message)
    if not unknown or parser is None:
        return None
    key = unknown.group(1)
    source = next(
        (str(p) for p in reversed(line.config_files) if _value_at(read_config_file(p), key) is not _ABSENT),
        None,
    )
    known = {option[2:] for action in parser_actions(parser) for option in action.option_strings}
    parts = key.split(".")
    hint = ""
    for depth in range(len(parts)):
        prefix = ".".join(parts[:depth])
        level = {k[len(prefix) + 1 if prefix else 0 :].split(".")[0] for k in known if k.startswith(prefix)}
        if parts[depth] not in level:
            close = difflib.get_close_matches(parts[depth], sorted(level), n=1, cutoff=0.6)
            hint = f" (did you mean {'.'.join([*parts[:depth], close[0]])}?)" if close else ""
            break
    return f"{source + ': ' if source else ''}{key}: no such option{hint}"


def unknown_component_arg(message: str, line: CommandLine) -> str | None:
    """``Option 'patiense' is not accepted`` for a callback's or logger's argument: where it is (a config
    file's ``trainer.callbacks[0].init_args.patiense``, or the typed flag) and the class's closest one."""
    unknown = _NOT_ACCEPTED_ARG.match(message.strip())
    if not unknown:
        return None
    name = unknown.group(1)
    found = None
    for path in line.config_files:
        config = read_config_file(path)
        sections = [(section, config.get(section)) for section in ("optimizer", "lr_scheduler")]
        for where, node in [*_class_nodes(config.get("trainer"), "trainer"), *sections]:
            init_args = node.get("init_args") if isinstance(node, dict) else None
            if isinstance(init_args, dict) and name in init_args and _refuses(node.get("class_path"), name):
                found = (f"{path}: {where}.init_args.{name}", node["class_path"])
    typed = [arg.partition("=")[0] for arg in line.args]
    for component in ("callbacks", "logger"):
        if f"--trainer.{component}.{name}" in typed:
            named = [line.typed_value(flag) for flag in (f"--trainer.{component}+", f"--trainer.{component}")]
            if named := next((n for n in named if n), None):
                found = (f"--trainer.{component}.{name}", named)
    if found is None:
        return None
    where, class_path = found
    cls = _component_class(class_path)
    if cls is None:
        return None
    arguments = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    if name in arguments:  # the class takes it: the refused one is elsewhere
        return None
    refused = no_such_argument(where, cls, name, arguments)
    if name == "monitor" and cls.__name__ == "ReduceLROnPlateau":  # torch's; Lightning's own takes a monitor
        return f"{refused[:-1]}; lightning.pytorch.cli.ReduceLROnPlateau takes monitor)"
    return refused


def _refuses(class_path: Any, name: str) -> bool:
    """Whether the class a config names does not take the argument ``name`` (unknown classes: unsure)."""
    cls = _component_class(class_path) if isinstance(class_path, str) else None
    if cls is None:
        return True
    return name not in inspect.signature(cls.__init__).parameters


def no_such_argument(where: str, cls: type, name: str, arguments: list[str]) -> str:
    """``my.yaml: ...patiense: EarlyStopping has no argument 'patiense' (did you mean patience?)``, or the
    arguments it takes when none is close."""
    close = difflib.get_close_matches(name, arguments, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"it takes: {', '.join(arguments) or 'none'}"
    return f"{where}: {cls.__name__} has no argument {name!r} ({hint})"


def _component_class(class_path: str) -> type | None:
    """The class a callback or logger path names (a short name among Lightning's and litforge's)."""
    module_name, _, name = class_path.rpartition(".")
    for module in [module_name] if module_name else _COMPONENT_MODULES:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(found, type):
            return found
    return None


def logger_argument_missing(message: str, line: CommandLine) -> str | None:
    """A logger of the user's (``--trainer.logger CSVLogger``, a config's ``trainer.logger``) without an
    argument its class requires: jsonargparse says ``the following arguments are required: save_dir``, or
    of a list's entry ``Not a valid subclass of Logger``, naming neither the logger nor the flag."""
    if "arguments are required" not in message and "trainer.logger" not in message:
        return None
    for where, named, given, flag in _configured_loggers(line):
        cls = _component_class(named)
        if cls is None:
            continue
        required = [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self"
            and p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        if missing := [name for name in required if name not in given]:
            how = f"{flag}.{missing[0]} VALUE" if flag else f"init_args: {{{missing[0]}: ...}}"
            return (
                f"{where}: {cls.__name__} needs {', '.join(missing)} ({how}); litforge's own CSV and "
                "TensorBoard loggers already write into the run folder, without one"
            )
    return None


def _configured_loggers(line: CommandLine) -> list[tuple[str, str, set[str], str | None]]:
    """``(where, class named, arguments given, flag or None)`` of each logger typed or in a config file."""
    found = []
    if typed := line.typed_value("--trainer.logger"):
        given = {
            arg.split("=")[0].rsplit(".", 1)[-1]
            for arg in line.args
            if arg.startswith(("--trainer.logger.", "--trainer.logger.init_args."))
        }
        found.append((f"--trainer.logger {typed}", typed, given, "--trainer.logger"))
    for path in line.config_files:
        loggers = (read_config_file(path).get("trainer") or {}).get("logger")
        entries = loggers if isinstance(loggers, list) else [loggers]
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and isinstance(entry.get("class_path"), str):
                key = f"trainer.logger[{index}]" if isinstance(loggers, list) else "trainer.logger"
                found.append((f"{path}: {key}", entry["class_path"], set(entry.get("init_args") or {}), None))
    return found
