"""What a command line says about its config, read before the parser is built.

litforge fit --model mymod.LitModel --data mymod.MyDataModule   # the class defaults hold
litforge fit                                                    # the packaged default applies whole

The packaged default (``litforge/configs/default.yaml``) applies only where the user gave nothing of
their own: its trainer settings when no ``--config`` is given, its ``model``/``data`` sections only when
no ``--model``/``--data`` class is named on the command line or in a config. (Setting a default class
with init args and letting the user swap the class would carry those init args over to the user's
class: jsonargparse keeps values whose names the new class also takes.)

Every YAML file read here is bounded in size and in alias expansion, so a crafted config cannot exhaust
memory; see ``load_yaml``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import Namespace

from litforge.errors import UsageError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_YAML_NODES = 200_000  # after expanding aliases: a generous bound for any real config
CLASS_SECTIONS = ("model", "data")
_CONFIG_FLAGS = ("--config", "-c")
# flags whose value says where a run lives; read from the command line only
_RUN_FLAGS = ("--experiment", "--run", "--ckpt_path", "--trainer.default_root_dir")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (PyYAML silently keeps the last
    one, so a second ``lr:`` further down a file would quietly win). A key that overrides one brought in
    by a ``<<: *anchor`` merge is not a repeat."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *anchor``: its keys may be overridden, that is what it is for
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' appears twice (line {key_node.start_mark.line + 1})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` safely, refusing documents that expand past ``MAX_YAML_NODES`` (alias bombs)
    and mappings that give a key twice.

    Raises:
        UsageError: naming ``source``, for invalid YAML, a repeated key or a document that expands too far.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).replace('"<unicode string>", ', "").split())
        raise UsageError(f"{source}: not valid YAML: {detail}") from None
    if root is not None and _expanded_size(root) > MAX_YAML_NODES:
        raise UsageError(
            f"{source}: refused: its aliases expand to more than {MAX_YAML_NODES:,} values "
            "(a YAML alias bomb?)"
        )
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise UsageError(f"{source}: {' '.join(str(error).split())}") from None


def bounded_yaml_loader(text: str) -> Any:
    """jsonargparse's loader for litforge's parser: ``load_yaml`` for every value it parses (nested
    config files and inline YAML included), so no path around the bound remains."""
    if len(text) > MAX_CONFIG_BYTES:
        raise UsageError(f"refused a YAML value of {len(text):,} bytes (limit {MAX_CONFIG_BYTES:,})")
    return load_yaml(text, "config value")


def check_inline_value(value: str, flag: str) -> None:
    """Refuse a command-line value that is too large or a YAML alias bomb before any parser reads it
    (jsonargparse loads some values with its own YAML loader, outside ``bounded_yaml_loader``)."""
    if len(value) > MAX_CONFIG_BYTES:
        raise UsageError(f"{flag}: refused a value of {len(value):,} bytes (limit {MAX_CONFIG_BYTES:,})")
    if "&" not in value or "*" not in value:
        return  # no anchor and alias: nothing expands
    try:
        root = yaml.compose(value, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # not YAML: the parser says what is wrong with it
    if root is not None and _expanded_size(root) > MAX_YAML_NODES:
        raise UsageError(
            f"{flag}: refused: its YAML aliases expand to more than {MAX_YAML_NODES:,} values "
            "(a YAML alias bomb?)"
        )


def _expanded_size(root: yaml.Node) -> int:
    """Number of YAML nodes once every alias is expanded, computed without expanding (memoised)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a self-referencing node counts once instead of recursing forever
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(key) + size(value) for key, value in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    return size(root)


def flat_config(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config -> ``{"trainer.max_epochs": 2, ...}`` (lists kept whole)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        flat.update(flat_config(inner, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def read_config_file(path: Path, flag: str = "--config") -> dict[str, Any]:
    """A config file as a mapping; one-line ``UsageError`` naming the file for anything else."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise UsageError(f"{flag} {path}: {size:,} bytes is too large for a config (limit 4 MiB)")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{flag}: no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{flag}: {path} is a folder, not a config file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{flag} {path}: not a text file (a YAML config is UTF-8 text)") from None
    except OSError as error:
        raise UsageError(f"{flag}: cannot read {path}: {error.strerror}") from None
    config = load_yaml(text, f"{flag} {path}")
    if config is None:
        raise UsageError(
            f"{flag} {path}: the file is empty; a config is a YAML mapping (trainer:, model:, ...)"
        )
    if not isinstance(config, dict):
        raise UsageError(
            f"{flag} {path}: a config is a YAML mapping (trainer:, model:, data:), not a {type(config).__name__}"
        )
    return config


@dataclass
class CommandLine:
    """A subcommand's arguments, with what they say about config files, classes and the run folder."""

    args: list[str]
    config_files: list[Path] = field(default_factory=list)
    named_classes: dict[str, str | None] = field(default_factory=dict)  # section -> class path/name
    run_flags: dict[str, str] = field(default_factory=dict)
    model_args: list[str] = field(default_factory=list)  # init args given as --model.NAME
    recorded_ckpt_paths: list[Path] = field(default_factory=list)  # config files that set a ckpt_path
    logger_overlays: set[Path] = field(default_factory=set)  # config files of trainer.logger alone
    complete: bool = False  # a complete typed config: no packaged default applies

    def names_class(self, section: str) -> bool:
        return section in self.named_classes

    @property
    def has_config(self) -> bool:
        """Whether a config file replaces the packaged default's trainer settings: any but a logger overlay
        (``configs/loggers/wandb.yaml``, a file of ``trainer.logger`` alone), which adds to them."""
        return bool(self.base_config_files)

    @property
    def base_config_files(self) -> list[Path]:
        """The config files but logger overlays (``is_logger_overlay``)."""
        return [path for path in self.config_files if path not in self.logger_overlays]

    def typed_value(self, flag: str) -> str | None:
        """The value typed for ``flag`` (``--flag value`` or ``--flag=value``); the last one wins."""
        found = None
        for index, arg in enumerate(self.args):
            key, equals, value = arg.partition("=")
            if key == flag:
                found = value if equals else (self.args[index + 1] if index + 1 < len(self.args) else None)
        return found

    def sets(self, dotted: str, overlays: bool = True) -> bool:
        """Whether the user set ``dotted`` (``trainer.max_epochs``): typed as a flag, or in a config file
        (``overlays=False``: not counting logger overlays, ``is_logger_overlay``); not a packaged or a class
        default."""
        if self.typed_value(f"--{dotted}") is not None:
            return True
        for path in self.config_files if overlays else self.base_config_files:
            section: Any = read_config_file(path)
            for key in dotted.split("."):
                section = section.get(key) if isinstance(section, dict) else None
            if section is not None:
                return True
        return False

    @property
    def types_optimizer(self) -> bool:
        """Whether ``--optimizer``/``--lr_scheduler`` (or one of their arguments) is typed."""
        return any(arg.split("=")[0].split(".")[0] in ("--optimizer", "--lr_scheduler") for arg in self.args)

    @property
    def asks_help(self) -> bool:
        return any(arg in ("-h", "--help") or arg.endswith(".help") for arg in self.args)


def is_logger_overlay(config: dict[str, Any]) -> bool:
    """A config of ``trainer.logger`` alone (litforge's ``configs/loggers/*.yaml``): it adds a logger to
    whatever else applies, so the packaged default's seed, trainer and early stopping stay as they were."""
    trainer = config.get("trainer")
    return set(config) == {"trainer"} and isinstance(trainer, dict) and set(trainer) == {"logger"}


def scan(args: list[str]) -> CommandLine:
    """Read ``args`` (no subcommand) for ``--config`` files, named ``--model``/``--data`` classes and the
    run-folder flags; each config file is read (bounded) and checked to be a YAML mapping."""
    args = configs_first(args)
    line = CommandLine(args)
    for key, value in flag_values(args):
        check_inline_value(value, key)
        if key in _CONFIG_FLAGS:
            config = read_config_file(Path(value), key)
            line.config_files.append(Path(value))
            if is_logger_overlay(config):
                line.logger_overlays.add(Path(value))
            if config.get("ckpt_path"):
                line.recorded_ckpt_paths.append(Path(value))
            for section in CLASS_SECTIONS:
                if (named := _class_in(config.get(section))) is not None:
                    line.named_classes[section] = named
        elif key.removeprefix("--") in CLASS_SECTIONS:
            if (named := _class_in(_flag_value_as_config(value, key))) is not None:
                line.named_classes[key.removeprefix("--")] = named
        elif key.endswith(".class_path") and key[2:].removesuffix(".class_path") in CLASS_SECTIONS:
            line.named_classes[key[2:].removesuffix(".class_path")] = value
        elif key.startswith("--model."):
            line.model_args.append(key.removeprefix("--model.").removeprefix("init_args.").split(".")[0])
        if key in _RUN_FLAGS:
            line.run_flags[key] = value
    return _classes_before_configs(_classes_before_their_arguments(line))


def _classes_before_their_arguments(line: CommandLine) -> CommandLine:
    """``--model.hidden_dim 8 --model Classifier``: the parser applies flags left to right, so the argument
    met no class yet and was refused ("Option 'hidden_dim' is not accepted"). A class typed after its own
    arguments moves in front of the first of them (the config's ``--optimizer``/``--lr_scheduler`` too)."""
    for section in (*CLASS_SECTIONS, "optimizer", "lr_scheduler"):
        args = line.args
        named = [i for i, arg in enumerate(args) if arg == f"--{section}" or arg.startswith(f"--{section}=")]
        arguments = [i for i, arg in enumerate(args) if arg.startswith(f"--{section}.")]
        if len(named) != 1 or not arguments or arguments[0] > named[0]:
            continue  # (two classes typed: the parser's own order decides, as the user wrote it)
        start = named[0]
        width = 1 if "=" in args[start] else 2
        moved = args[start : start + width]
        rest = args[:start] + args[start + width :]
        line.args = rest[: arguments[0]] + moved + rest[arguments[0] :]
    return line


def _classes_before_configs(line: CommandLine) -> CommandLine:
    """``--model mymod.X -c small.yaml`` where small.yaml sets ``model: {init_args: {lr: 0.05}}`` and names no
    class: the typed class goes in front of the config files as well (they are parsed first, see
    ``configs_first``), so the file's init args apply to it instead of to no class at all."""
    front: list[str] = []
    for section in CLASS_SECTIONS:
        flag = f"--{section}"
        typed = line.typed_value(flag)
        configured = [read_config_file(path).get(section) for path in line.config_files]
        if typed is None or not re.fullmatch(r"[\w.]+", typed) or not any(configured):
            continue
        if not any(_class_in(part) is not None for part in configured):
            front += [flag, typed]
    if front:
        line.args = [*front, *line.args]
    return line


def replaced_class_notes(line: CommandLine, parsed: Any) -> list[str]:
    """``--model mymod.Other -c exp.yaml`` where exp.yaml's model is another class with init args: the parser
    (jsonargparse) keeps those Other also takes and drops the rest, without a word. A note for each section
    says which, so a ``lr`` written for another class does not pass for Other's own default."""
    notes = []
    for section in CLASS_SECTIONS:
        value = line.typed_value(f"--{section}")
        typed = _class_in(_flag_value_as_config(value, f"--{section}")) if value is not None else None
        files = [
            (source, part) for source, part in section_sources(line, section) if source != f"--{section}"
        ]
        named = [index for index, (_, part) in enumerate(files) if _class_in(part)]
        if typed is None or not named:
            continue
        source, part = files[named[-1]]
        other = str(_class_in(part))
        if other.rsplit(".", 1)[-1] == typed.rsplit(".", 1)[-1]:
            continue
        given: dict[str, Any] = {}
        for _, later in files[named[-1] :]:  # the init args the files give that class
            if isinstance(later, dict) and isinstance(later.get("init_args"), dict):
                given.update(later["init_args"])
        final = parsed.get(section) if parsed is not None else None
        init_args = final.get("init_args") if final is not None else None
        taken = set(vars(init_args)) if init_args is not None else set()
        typed_args = {
            k for k in given if {f"--{section}.{k}", f"--{section}.init_args.{k}"} & set(_flags(line))
        }
        kept = [f"{k}={given[k]}" for k in given if k in taken and k not in typed_args]
        dropped = [k for k in given if k not in taken]
        if kept or dropped:
            said = [f"keeps {', '.join(kept)} from there"] if kept else []
            said += [f"drops {', '.join(dropped)} ({typed} takes no such argument)"] if dropped else []
            notes.append(f"--{section} {typed} replaces {source}'s {other}: it {' and '.join(said)}")
    return notes


def _flags(line: CommandLine) -> list[str]:
    return [arg.partition("=")[0] for arg in line.args if arg.startswith("--")]


def section_sources(line: CommandLine, section: str) -> list[tuple[str, Any]]:
    """Where ``line`` sets ``section`` (``model``/``data``): ``(source, value)`` for each config file and
    each ``--model FILE|{...}`` flag, in the order they apply."""
    found = [(str(path), read_config_file(path).get(section)) for path in line.config_files]
    found += [
        (f"--{section}", _flag_value_as_config(value, key))
        for key, value in flag_values(line.args)
        if key == f"--{section}"
    ]
    return found


def configs_first(args: list[str]) -> list[str]:
    """``args`` with every ``--config FILE`` moved to the front (configs keep their order, and so does the
    rest): a flag typed on the command line overrides the config files wherever it stands, so
    ``--ckpt_path X --config <run>/config.yaml`` uses X, not the config's ``ckpt_path``."""
    configs: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in _CONFIG_FLAGS and index + 1 < len(args):
            configs += args[index : index + 2]
            index += 2
            continue
        (configs if arg.startswith("--config=") else rest).append(arg)
        index += 1
    return configs + rest


def stated_callback_modes(line: CommandLine) -> set[str]:
    """The metrics whose ``ModelCheckpoint``/``EarlyStopping`` the user gave a ``mode`` in their own words: in
    a config file's ``trainer.callbacks`` (not in a config litforge wrote, which spells out every default),
    or typed (``--trainer.callbacks.mode max`` states one for the monitors typed beside it). Any other
    ``mode`` is Lightning's default, ``min``, whatever the metric."""
    stated: set[str] = set()
    for path in line.config_files:
        config = read_config_file(path)
        if {"checkpoint_every_n_steps", "monitor_mode"} <= set(config):  # written by litforge: config.yaml,
            continue  # best.yaml, --print_config; such a dump writes out every default, Lightning's min too
        trainer = config.get("trainer")
        callbacks = trainer.get("callbacks") if isinstance(trainer, dict) else None
        for item in callbacks if isinstance(callbacks, list) else [callbacks]:
            arguments = item.get("init_args") if isinstance(item, dict) else None
            if isinstance(arguments, dict) and "mode" in arguments and arguments.get("monitor"):
                stated.add(str(arguments["monitor"]))
    typed = [(key.replace(".init_args.", "."), value) for key, value in flag_values(line.args)]
    if any(key == "--trainer.callbacks.mode" for key, _ in typed):
        stated |= {value for key, value in typed if key == "--trainer.callbacks.monitor"}
    return stated


def flag_values(args: list[str]) -> list[tuple[str, str]]:
    """Every ``--key value`` / ``--key=value`` pair (a flag without a value pairs with the next word,
    which is harmless: only the keys above are looked at)."""
    pairs = []
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            key, eq, value = arg.partition("=")
            if eq or i + 1 < len(args):
                pairs.append((key, value if eq else args[i + 1]))
    return pairs


def _flag_value_as_config(value: str, flag: str) -> Any:
    """``--model X``: X is a class name, a YAML/JSON mapping, or a path to one."""
    if value.endswith((".yaml", ".yml", ".json")) or _is_file(value):
        return read_config_file(Path(value), flag)
    if value.lstrip().startswith("{"):
        return load_yaml(value, flag)
    return value


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte: not a file
        return False


def _class_in(section: Any) -> str | None:
    """The class a config section names (``model: X`` or ``model: {class_path: X}``), else ``None``."""
    if isinstance(section, str) and section:
        return section
    if isinstance(section, dict) and section.get("class_path"):
        return str(section["class_path"])
    return None


def packaged_defaults(line: CommandLine) -> dict[str, Any]:
    """The parser defaults the packaged default contributes to this command line (dotted keys).

    No ``--config``: everything in ``default.yaml`` except a ``model``/``data`` section whose class the
    user names (and its ``max_epochs`` when ``--trainer.max_steps`` is typed alone). With a ``--config``:
    only the default classes for sections that name none (a config giving just ``model: {hidden_dim:
    256}`` means litforge's ``Classifier``), without their init args.
    """
    if line.complete:
        return {}
    default = _packaged()
    defaults: dict[str, Any] = {}
    if not line.has_config:
        defaults["seed_everything"] = default.get("seed_everything")
        defaults.update({f"trainer.{k}": v for k, v in (default.get("trainer") or {}).items()})
        if line.sets("trainer.max_steps") and not line.sets("trainer.max_epochs"):
            # a run by steps: Lightning then trains as many epochs as they take, as it would without us
            del defaults["trainer.max_epochs"]
    for section in CLASS_SECTIONS:
        if line.names_class(section) or section not in default:
            continue
        packaged = default[section]
        defaults[section] = packaged if not line.has_config else {"class_path": packaged["class_path"]}
    return defaults


def default_class_path(section: str) -> str:
    """The class the packaged default uses for ``model`` or ``data``."""
    return str(_packaged()[section]["class_path"])


@functools.cache
def _packaged() -> dict[str, Any]:
    return read_config_file(DEFAULT_CONFIG)


def class_path_of(value: Any) -> str | None:
    """``{class_path: X, init_args: ...}`` (a dict or a parsed Namespace) -> ``X``."""
    return value.get("class_path") if isinstance(value, (dict, Namespace)) else None
