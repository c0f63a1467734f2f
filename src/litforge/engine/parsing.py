"""Command-line parsing for litforge's LightningCLI: one-line errors, bounded YAML.

litforge fit --trainer.max_epochs abc
litforge: error: --trainer.max_epochs: expected int, got 'abc'      (placed by config_mistakes.misplaced_value)
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
from typing import Any, NoReturn

import yaml
from jsonargparse import set_loader
from lightning.pytorch.cli import LightningArgumentParser

from litforge._compat.argparse import flag_suggestion
from litforge.engine.config_mistakes import no_such_argument
from litforge.engine.config_sources import (
    CLASS_SECTIONS,
    CommandLine,
    bounded_yaml_loader,
    class_path_of,
    default_class_path,
    section_sources,
)
from litforge.errors import LitforgeError, UsageError
from litforge.working_folder import missing_module_hint, modules_defining

_PARSER_MODE = "litforge_yaml"


def parser_mode() -> str:
    """The jsonargparse parser mode of litforge's parser: YAML through ``bounded_yaml_loader`` (size and
    alias expansion bounded). Registered under its own name, so other parsers in the process keep theirs."""
    set_loader(_PARSER_MODE, bounded_yaml_loader, exceptions=(yaml.YAMLError, UsageError))
    return _PARSER_MODE


parser_mode()  # also at import: a ddp_spawn process unpickles a parser of this mode, and knew no such mode


class LitforgeArgumentParser(LightningArgumentParser):
    """Raises ``UsageError`` with a one-line message instead of printing usage and exiting."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if ex is not None and (cause := litforge_cause(ex)) is not None:
            raise cause from None  # e.g. a refused YAML value: already one clear line
        raise UsageError(condense_parser_message(message) + flag_suggestion(self, message))


_NOISE = (
    "Does not validate against any of the",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Expected a NoneType",
    "Parser key",
    "Expected a path but",
)


def condense_parser_message(message: str) -> str:
    """Reduce jsonargparse's nested, multi-line messages to one line naming the key and the problem."""
    if message.startswith("Problems parsing config"):  # invalid YAML: keep the parser's line and column
        detail = " ".join(
            message.removeprefix("Problems parsing config:").replace('"<unicode string>", ', "").split()
        )
        return f"--config: not valid YAML: {detail}"
    if help_of := re.fullmatch(r"-*([\w.]+)\.help: (.*)", message.strip()):  # --model.help Classifer
        return f"--{help_of.group(1)}.help: {_help_class_problem(help_of.group(2))}"
    lines = [
        re.sub(r'^Parser key "[^"]+":\s*', "", line.strip().lstrip("-").strip())
        for line in message.splitlines()
    ]
    lines = [re.sub(r"<class '([\w.]+)'>", r"\1", line) for line in lines if line]
    # "Expected a float. Got value: abc" (a class's init arg) -> the two lines other keys get
    lines = [
        part
        for line in lines
        for part in re.sub(r"^(Expected a .+?)\. Got value: ", r"\1\nGiven value: ", line).split("\n")
    ]
    key_match = re.search(r'(?:Parser key|Key) "([^"]+)"', message)
    useful = [line for line in lines if not line.startswith(_NOISE)]
    given = next(
        (line.removeprefix("Given value:").strip() for line in useful if line.startswith("Given value:")),
        None,
    )
    expected = [line for line in useful if line.startswith("Expected a")]
    others = [line for line in useful if not line.startswith(("Expected a", "Given value:"))]
    import_path = next((line for line in expected if line.startswith(_IMPORT_PATH)), None)
    class_problem = next((i for i, line in enumerate(useful) if line.startswith(_CLASS_PROBLEM)), None)
    if class_problem is not None:
        detail = _class_path_problem(useful[class_problem], useful[class_problem + 1 :])
    elif import_path and all(line.startswith(_IMPORT_PATH) for line in expected):  # only a class fits
        name = import_path.rsplit(":", 1)[-1].strip()
        detail = f"unknown class {name!r}{_class_name_hint(name)}"
    elif wrong_base := _WRONG_BASE.search(" ".join(lines)):  # an injected callable of the wrong class
        detail = f"{wrong_base.group(1)!r} is not a {wrong_base.group(2)} subclass"
    elif others and others[0].startswith(_NOT_A_SUBCLASS) and given:
        detail = f"{given!r} is not a {others[0].removeprefix(_NOT_A_SUBCLASS).strip()} subclass"
    elif others:
        detail = others[0]
    elif expected:  # "float or Tensor": a value of the plain type was meant, not a class path
        detail = _expected_types(
            [e.removeprefix("Expected a ").strip() for e in expected if e is not import_path], given
        )
    else:
        detail = lines[-1] if lines else message
    if key_match and key_match.group(1) == "config":
        return f"--config: {detail}"
    if key_match:
        return f'config key "{key_match.group(1)}": {detail}'
    return detail


def _help_class_problem(problem: str) -> str:
    """What is wrong with the class ``--model.help CLASS`` names, with the closest one."""
    if unknown := re.fullmatch(r"Expected a dot import path string: (\S+)", problem):
        return f"unknown class {unknown.group(1)!r}{_class_name_hint(unknown.group(1))}"
    if absent := re.fullmatch(r"module '([\w.]+)' has no attribute '(\w+)'", problem):
        return _class_path_problem(f"{_CLASS_PROBLEM} '{'.'.join(absent.groups())}':", [problem])
    if missing := re.fullmatch(r"No module named '([\w.]+)'", problem):
        return problem + missing_module_hint(missing.group(1))
    return problem


_LITERAL = re.compile(r"typing\.Literal\[([^\]]*)\]")


def _expected_types(types: list[str], given: str | None) -> str:
    """``expected int or one of 16-mixed, bf16-mixed, ..., got 'bf17' (did you mean bf16?)``: the accepted
    types, with ``typing.Literal[...]`` choices as plain values and the closest to what was given."""
    choices = [
        value.strip().strip("'\"")
        for t in types
        for match in _LITERAL.findall(t)
        for value in match.split(",")
    ]
    plain = [t for t in types if not _LITERAL.fullmatch(t)]
    named = " or ".join([*plain, *([f"one of {', '.join(choices)}"] if choices else [])])
    if given is None:
        return f"expected {named}"
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
    return f"expected {named}, got {given!r}" + (f" (did you mean {close[0]}?)" if close else "")


def _class_name_hint(name: str) -> str:
    """What an unknown short class name may have meant: a class of that name in a file of the working folder
    (``VAE`` -> ``vae.VAE``), or the closest litforge or Lightning short name (``EarlyStoping``)."""
    if "." not in name and (defined := modules_defining(name)):
        return f" (did you mean {' or '.join(defined[:3])}, from the working folder?)"
    import lightning.pytorch.callbacks as callbacks
    import lightning.pytorch.loggers as loggers

    import litforge.data
    import litforge.models

    known = {
        n for m in (callbacks, loggers, litforge.models, litforge.data) for n in dir(m) if n[:1].isupper()
    }
    close = difflib.get_close_matches(name.rsplit(".", 1)[-1], sorted(known), n=1, cutoff=0.8)
    if close and "." not in name:
        return f" (did you mean {close[0]}?)"
    return ": use a litforge short name (e.g. Classifier) or a full import path"


_CLASS_PROBLEM = "Problem with given class_path"
_IMPORT_PATH = "Expected a dot import path string:"
_WRONG_BASE = re.compile(r"Expected '([\w.]+)' to be a subclass of (\w+)")
_NOT_A_SUBCLASS = "Import path does not correspond to a subclass of"


def _class_path_problem(line: str, following: list[str]) -> str:
    """``Problem with given class_path 'mymod.X':`` plus its cause (jsonargparse puts it on the next line),
    with a hint when the module is not found from the current folder."""
    class_path = line.removeprefix(_CLASS_PROBLEM).strip().rstrip(":").strip("'")
    cause = following[0] if following and not following[0].startswith("Expected a") else "cannot be used"
    detail = f"cannot use class {class_path!r}: {cause}"
    missing = re.match(r"No module named '([\w.]+)'", cause)
    if missing and class_path.startswith(missing.group(1)):
        detail += missing_module_hint(missing.group(1))
    absent = re.match(r"module '([\w.]+)' has no attribute '(\w+)'", cause)
    if absent and (module := sys.modules.get(absent.group(1))) is not None:
        classes = [name for name, value in vars(module).items() if isinstance(value, type)]
        close = difflib.get_close_matches(absent.group(2), classes, n=1, cutoff=0.6)
        detail += f" (did you mean {absent.group(1)}.{close[0]}?)" if close else ""
    return detail


_NOT_ACCEPTED = re.compile(r"Option '([\w-]+)' is not accepted$")
_BARE_KEY = re.compile(r'^config key "(\w+)": (.*)$')


def init_arg_problem(message: str, line: CommandLine) -> str | None:
    """A one-line parser error about a model/data init argument, placed where the user wrote it:
    ``--model.lr: expected float, got 'abc'`` instead of ``config key "lr": ...``, and a misspelt name
    with its closest argument (``unknown_init_arg``). ``None``: the message stands as it is."""
    if (unknown := unknown_init_arg(message, line)) is not None:
        return unknown
    if (missing := missing_init_args(message, line)) is not None:
        return missing
    if (unprefixed := unprefixed_init_arg(message, line)) is not None:
        return unprefixed
    bare = _BARE_KEY.match(message.strip())
    if not bare:
        return None
    name, detail = bare.groups()
    for section in CLASS_SECTIONS:
        if where := _typed_flag(line, section, name) or _config_key(line, section, name):
            return f"{where}: {detail}"
    return None


_UNRECOGNIZED_BARE = re.compile(r"unrecognized arguments: --(\w+)\b")


def unprefixed_init_arg(message: str, line: CommandLine) -> str | None:
    """``--lr 0.01`` for the model's ``lr``: ``unrecognized arguments: --lr 0.01 (did you mean --model.lr?)``,
    where the model or data class (as typed, configured or packaged) takes an argument of that name."""
    unknown = _UNRECOGNIZED_BARE.match(message.strip())
    if not unknown or "did you mean" in message:
        return None
    flags = []
    for section in CLASS_SECTIONS:
        cls = _loaded_class(line.named_classes.get(section) or default_class_path(section))
        if cls is not None and unknown.group(1) in (_init_arguments(cls) or ()):
            flags.append(f"--{section}.{unknown.group(1)}")
    return f"{message.strip()} (did you mean {' or '.join(flags)}?)" if flags else None


_REQUIRED = re.compile(r"the following arguments are required: ([\w., ]+)$")


def missing_init_args(message: str, line: CommandLine) -> str | None:
    """jsonargparse's ``the following arguments are required: net`` (it names neither the flag nor the class)
    -> ``--model.net is required: InjectedNet.__init__ takes net with no default (e.g. --model.net mymod.MLP)``."""
    required = _REQUIRED.match(message.strip())
    if not required:
        return None
    names = [name.strip().rpartition(".")[2] for name in required.group(1).split(",")]
    for section in CLASS_SECTIONS:
        cls = _loaded_class(line.named_classes.get(section) or default_class_path(section))
        arguments = (_init_arguments(cls) or []) if cls is not None else []
        if cls is not None and names[0] in arguments:
            flags = ", ".join(f"--{section}.{name}" for name in names)
            verb = "is" if len(names) == 1 else "are"
            return (
                f"{flags} {verb} required: {cls.__name__}.__init__ takes {', '.join(names)} with no default "
                "(pass it on the command line or in a --config file)"
            )
    return None


def unknown_init_arg(message: str, line: CommandLine) -> str | None:
    """jsonargparse's ``Option 'hiden_dim' is not accepted`` (a class's init args; it names neither the flag
    nor the class) -> ``--model.hiden_dim: LitModel has no argument 'hiden_dim' (did you mean hidden_dim?)``.

    Only where the culprit is certain: a typed ``--model.NAME``/``--data.NAME`` flag, or a config file whose
    ``model``/``data`` section holds NAME, for a class whose arguments can be listed. ``None`` otherwise
    (a callback's argument, a nested class, a class taking ``**kwargs``): jsonargparse's line stands."""
    unknown = _NOT_ACCEPTED.match(message.strip())
    if not unknown:
        return None
    name = unknown.group(1)
    if (optimizer := _optimizer_arg_problem(line, name)) is not None:
        return optimizer
    in_config = None
    for section in CLASS_SECTIONS:
        where = _typed_flag(line, section, name) or _config_key(line, section, name)
        if where is None and (in_config := _nested_config_key(line, section, name)) is not None:
            where, named = in_config  # my.yaml: model.init_args.net.init_args.hiden
            cls = _loaded_class(named)
        elif where is None:
            continue
        elif _is_nested(where):  # the injected class: as typed (--model.net X), else as a config names it
            named = line.typed_value(_parent_flag(where)) or _configured_class(line, section, where)
            cls = _loaded_class(named) if named else None
        else:
            cls = _loaded_class(line.named_classes.get(section) or default_class_path(section))
        arguments = _init_arguments(cls) if cls is not None else None
        if cls is None or arguments is None or name in arguments:
            return f"{where}: no argument {name!r} there" if _is_nested(where) or in_config else None
        return no_such_argument(where, cls, name, arguments)
    return None


# LightningCLI's sections of the config's own optimizer and scheduler, and where their short names live
_OPTIMIZER_SECTIONS = {
    "optimizer": ("torch.optim",),
    "lr_scheduler": ("torch.optim.lr_scheduler", "lightning.pytorch.cli"),
}


def _optimizer_arg_problem(line: CommandLine, name: str) -> str | None:
    """``--optimizer.lr 0.1`` with no optimizer class given anywhere (jsonargparse: ``Option 'lr' is not
    accepted``), or an argument the named optimizer/scheduler class does not take."""
    for section, homes in _OPTIMIZER_SECTIONS.items():
        if (flag := _typed_flag(line, section, name)) is None:
            continue
        named = _named_section_class(line, section)
        if named is None:
            example = "torch.optim.SGD" if section == "optimizer" else "torch.optim.lr_scheduler.StepLR"
            return f"{flag}: no {section} class is given for it (add --{section} {example}, or a config with {section}:)"
        candidates = [named] if "." in named else [f"{home}.{named}" for home in homes]
        for cls in filter(None, map(_loaded_class, candidates)):
            if (arguments := _init_arguments(cls)) is not None and name not in arguments:
                return no_such_argument(flag, cls, name, arguments)
    return None


def _named_section_class(line: CommandLine, section: str) -> str | None:
    """The class a ``section`` is given last: by a config file's ``class_path`` or a typed ``--section X``."""
    found = None
    for _, value in section_sources(line, section):
        found = (value if isinstance(value, str) else class_path_of(value)) or found
    return found


def _typed_flag(line: CommandLine, section: str, name: str) -> str | None:
    """The ``--model.NAME`` / ``--model.init_args.NAME`` flag as typed, if it was; else the one typed flag
    setting NAME in a class injected into ``section`` (``--model.optimizer.NAME``, ``--model.net.NAME``)."""
    flags = (f"--{section}.{name}", f"--{section}.init_args.{name}")
    typed = [arg.partition("=")[0] for arg in line.args if arg.startswith("--")]
    if (flag := next((flag for flag in typed if flag in flags), None)) is not None:
        return flag
    nested = {flag for flag in typed if flag.startswith(f"--{section}.") and flag.endswith(f".{name}")}
    return nested.pop() if len(nested) == 1 else None


def _configured_class(line: CommandLine, section: str, flag: str) -> str | None:
    """The class path a config file gives the injected argument of ``flag`` (``--model.net.hiden`` ->
    ``model.init_args.net.class_path``), the last config that names one."""
    path = [p for p in _parent_flag(flag)[2:].split(".") if p != "init_args"][1:]
    found = None
    for _, part in section_sources(line, section):
        for name in path:
            part = part.get("init_args", part) if isinstance(part, dict) else None
            part = part.get(name) if isinstance(part, dict) else None
        if isinstance(part, dict) and isinstance(part.get("class_path"), str):
            found = part["class_path"]
    return found


def _nested_config_key(line: CommandLine, section: str, name: str) -> tuple[str, str] | None:
    """``("my.yaml: model.init_args.net.init_args.NAME", "mymod.MLP")`` when a config file sets NAME in a class
    injected into ``section`` (the last such place, as when parsing); ``None`` when none does."""
    found = None

    def visit(node: Any, path: list[str], source: str) -> None:
        nonlocal found
        if not isinstance(node, dict):
            return
        init_args = node.get("init_args")
        if (
            path
            and isinstance(init_args, dict)
            and name in init_args
            and isinstance(node.get("class_path"), str)
        ):
            found = (f"{source}: {'.'.join([section, *path, 'init_args', name])}", node["class_path"])
        children = init_args if isinstance(init_args, dict) else node
        for key, child in children.items():
            visit(child, [*path, *(["init_args"] if children is init_args else []), str(key)], source)

    for source, part in section_sources(line, section):
        visit(part, [], source)
    return found


def _is_nested(where: str) -> bool:
    """``--model.net.hidden`` (an injected class's argument), not ``--model.hidden``."""
    return where.startswith("--") and len([p for p in where[2:].split(".") if p != "init_args"]) > 2


def _parent_flag(flag: str) -> str:
    """``--model.net.init_args.hidden`` -> ``--model.net``: the flag naming the injected class."""
    return flag.rpartition(".")[0].removesuffix(".init_args")


def _config_key(line: CommandLine, section: str, name: str) -> str | None:
    """``my.yaml: model.init_args.NAME`` when a config file (or a ``--model FILE|{...}`` value) sets NAME
    in ``section``; the last one wins, as when parsing."""
    found = None
    for source, part in section_sources(line, section):
        init_args = part.get("init_args", part) if isinstance(part, dict) else None
        if isinstance(init_args, dict) and name in init_args:
            found = f"{source}: {section}.init_args.{name}"
    return found


def _loaded_class(named: str) -> type | None:
    """The class ``named`` (a class path or a short name) among the modules already imported: the parser
    has imported it before complaining about its arguments, and a hint imports nothing new."""
    module_name, _, class_name = named.rpartition(".")
    if module_name:
        found = getattr(sys.modules.get(module_name), class_name, None)
        return found if isinstance(found, type) else None
    import lightning as L

    for base in (L.LightningModule, L.LightningDataModule):
        pending: list[type] = [base]
        while pending:
            cls = pending.pop()
            if cls.__name__ == named:
                return cls
            pending += cls.__subclasses__()
    return None


def _init_arguments(cls: type) -> list[str] | None:
    """The named arguments of ``cls.__init__``; ``None`` when it also takes ``**kwargs``."""
    try:
        parameters: Any = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def litforge_cause(error: BaseException) -> LitforgeError | None:
    """The first ``LitforgeError`` in ``error``'s cause/context chain, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, LitforgeError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
