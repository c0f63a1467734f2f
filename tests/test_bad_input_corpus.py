"""Bad inputs, one row each: the command, its exit code, the words its one error line must hold, and
nothing written. Crafted files are generated here, never committed."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli

MARKER = "payload-ran"


class _Payload:
    """Unpickling this runs ``touch payload-ran`` (what a malicious checkpoint would do)."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _inline_bomb(levels: int = 7) -> str:
    """A one-line YAML alias bomb (9**levels values from ~300 bytes), for a flag's value."""
    anchors = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for index in range(1, levels):
        name, previous = chr(ord("a") + index), chr(ord("a") + index - 1)
        anchors.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "{" + ", ".join(anchors) + "}"


INLINE_BOMB = _inline_bomb()


def _write_inputs(folder: Path) -> None:
    (folder / "empty.yaml").write_text("# nothing but a comment\n")
    (folder / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (folder / "list.yaml").write_text("- trainer\n- model\n")
    (folder / "csv_logger.yaml").write_text(
        "trainer:\n  logger:\n    - class_path: lightning.pytorch.loggers.CSVLogger\n"
    )
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [{', '.join([f'*{previous}'] * 10)}]")
    bomb.append("model: {init_args: {hidden_dim: *h}}")
    (folder / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    with zipfile.ZipFile(folder / "notatorch.ckpt", "w") as archive:
        archive.writestr("readme.txt", "a zip archive, but not one torch.save wrote")
    torch.save({"state_dict": {}, "evil": _Payload()}, folder / "pickled.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}}, folder / "whole.ckpt")
    whole = (folder / "whole.ckpt").read_bytes()
    (folder / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])  # an interrupted copy
    (folder / "whole.ckpt").unlink()
    (folder / "cfg.yaml").write_text("trainer:\n  max_epochs: 2\n")
    (folder / "data_typo.yaml").write_text("data:\n  init_args:\n    batchsize: 8\n")
    (folder / "trainer_typo.yaml").write_text("trainer:\n  max_step: 3\n")
    (folder / "section_typo.yaml").write_text("trainr:\n  max_steps: 3\n")
    (folder / "callback_typo.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n"
        "      init_args: {monitor: val_loss, patiense: 3}\n"
    )
    (folder / "scheduler_monitor.yaml").write_text(  # beside a callback that does take a monitor
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {monitor: val_loss}\n"
        "optimizer: {class_path: torch.optim.SGD, init_args: {lr: 0.1}}\n"
        "lr_scheduler:\n  class_path: torch.optim.lr_scheduler.ReduceLROnPlateau\n  init_args: {monitor: val_loss}\n"
    )
    (folder / "callback_no_init_args.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n      monitor: val_loss\n"
    )
    (folder / "class_typo.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStoping\n"
    )
    (folder / "no_init_args.yaml").write_text(
        "data:\n  class_path: litforge.data.DigitsDataModule\n  batch_size: 8\n"
    )
    (folder / "dup_key.yaml").write_text(
        "model:\n  init_args:\n    lr: 0.1\n    hidden_dim: 8\n    lr: 0.5\n"
    )
    (folder / "bad_value.yaml").write_text("trainer:\n  max_epochs: one\n")
    (folder / "callback_value.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: EarlyStopping\n      init_args: {monitor: val_loss, patience: high}\n"
    )
    (folder / "bad_mode.yaml").write_text(
        "trainer:\n  callbacks:\n    - class_path: EarlyStopping\n      init_args: {monitor: val_loss, mode: minimum}\n"
    )
    (folder / "init_arg.yaml").write_text(
        "model:\n  class_path: Classifier\n  init_arg:\n    hidden_dim: 8\n"
    )
    (folder / "clas_path.yaml").write_text(
        "trainer:\n  callbacks:\n    - clas_path: EarlyStopping\n      init_args: {monitor: val_loss}\n"
    )
    (folder / "afile").write_text("a file where a folder is expected\n")
    (folder / "export").mkdir()


CASES = [
    (["fit", "--trainer.max_epoc", "3"], "(did you mean --trainer.max_epochs?)"),
    (
        ["fit", "--max_epochs", "3"],
        "unrecognized arguments: --max_epochs 3 (did you mean --trainer.max_epochs?)",
    ),
    (["fit", "--lr", "0.1"], "unrecognized arguments: --lr 0.1 (did you mean --model.lr?)"),
    (["check", "--onyl", "forward"], "unrecognized arguments: --onyl forward (did you mean --only?)"),
    (
        ["fit", "--model.hiden_dim", "8"],
        "--model.hiden_dim: Classifier has no argument 'hiden_dim' (did you mean hidden_dim?)",
    ),
    (
        ["check", "--data.batchsize", "8"],
        "--data.batchsize: DigitsDataModule has no argument 'batchsize' (did you mean batch_size?)",
    ),
    (
        ["fit", "--config", "data_typo.yaml"],
        "data_typo.yaml: data.init_args.batchsize: DigitsDataModule has no argument 'batchsize' (did you",
    ),
    # a callback's argument: not blamed on the model or the data
    (
        ["fit", "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.patiense", "3"],
        "--trainer.callbacks.patiense: EarlyStopping has no argument 'patiense' (did you mean patience?)",
    ),
    (
        ["fit", "--config", "callback_typo.yaml"],
        "callback_typo.yaml: trainer.callbacks[0].init_args.patiense: EarlyStopping has no argument 'patiense'",
    ),
    # torch's ReduceLROnPlateau takes no monitor: it was blamed on the ModelCheckpoint, which does
    (
        ["fit", "--config", "scheduler_monitor.yaml"],
        "scheduler_monitor.yaml: lr_scheduler.init_args.monitor: ReduceLROnPlateau has no argument 'monitor' (it "
        "takes: optimizer, mode,",
    ),
    # a typed value YAML reads as a mapping: the flag, and how to give the string
    (
        ["fit", "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.filename", "{epoch}"],
        "--trainer.callbacks.filename {epoch}: expected str, got \"{'epoch': None}\"; YAML reads {epoch} as a "
        'mapping: give it as --trainer.callbacks.init_args \'{"filename": "{epoch}"}\' or in a config file',
    ),
    (
        ["fit", "--config", "trainer_typo.yaml"],
        "trainer_typo.yaml: trainer.max_step: no such option (did you mean",
    ),
    (
        ["fit", "--config", "section_typo.yaml"],
        "section_typo.yaml: trainr.max_steps: no such option (did you mean",
    ),
    (
        ["fit", "--config", "init_arg.yaml"],
        "init_arg.yaml: model.init_arg: no such key (did you mean init_args?)",
    ),
    (
        ["fit", "--config", "clas_path.yaml"],
        "clas_path.yaml: trainer.callbacks[0].clas_path: no such key (did you mean class_path?)",
    ),
    (["fit", "--config", "no_init_args.yaml"], "no_init_args.yaml: data: batch_size goes under init_args"),
    (
        ["fit", "--config", "class_typo.yaml"],
        "class_typo.yaml: trainer.callbacks[0].class_path: cannot use class 'lightning.pytorch.callbacks.EarlyStoping'",
    ),
    (
        ["fit", "--config", "callback_no_init_args.yaml"],
        "callback_no_init_args.yaml: trainer.callbacks[0]: monitor goes under init_args",
    ),
    (
        ["serve", "export", "--prot", "8000"],
        "error: serve: unrecognized arguments: --prot 8000 (did you mean --port?)",
    ),
    (
        ["test", "--ckpt_path", "truncated.ckpt"],
        "truncated.ckpt is a truncated checkpoint (its zip archive ends",
    ),
    (["fit", "--ckpt_path", "missing.ckpt"], "--ckpt_path: no such checkpoint file: missing.ckpt"),
    (
        ["test", "--ckpt_path", "lats"],
        "no such checkpoint file: lats (did you mean last, the run's last.ckpt?)",
    ),
    (["fit", "--run", "r", "--resume", "aut"], "no such file: aut (did you mean auto?)"),
    (["fit", "--config", "empty.yaml"], "empty.yaml: the file is empty"),
    (["fit", "--config", "dup_key.yaml"], "dup_key.yaml: 'lr' appears twice (line 5)"),
    (["fit", "--config", "bad_value.yaml"], "bad_value.yaml: trainer.max_epochs: expected int, got 'one'"),
    (["fit", "--trainer.max_epochs", "one"], "--trainer.max_epochs: expected int, got 'one'"),
    (
        ["fit", "--trainer.max_epochs", "-2"],
        "--trainer.max_epochs: must be at least 0 (-1 or null: no limit), got '-2'",
    ),
    (
        ["fit", "--trainer.accumulate_grad_batches", "0"],
        "--trainer.accumulate_grad_batches: must be at least 1, got '0'",
    ),
    (
        ["check", "--trainer.log_every_n_steps", "0"],
        "--trainer.log_every_n_steps: must be at least 1, got '0'",
    ),
    (["fit", "--trainer.val_check_interval", "0.0"], "--trainer.val_check_interval: must be above 0"),
    (
        ["fit", "--trainer.gradient_clip_val", "-1"],
        "--trainer.gradient_clip_val: must be at least 0 (0 or null",
    ),
    # a callback's argument of the wrong type: the flag or the file and place that gave it
    (
        ["fit", "--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.patience", "abc"],
        "--trainer.callbacks.patience abc: expected int, got 'abc'",
    ),
    (
        ["fit", "--config", "callback_value.yaml"],
        "callback_value.yaml: trainer.callbacks[0].init_args.patience: expected int, got 'high'",
    ),
    (  # a typed flag of the same name with a good value is not blamed for the file's
        ["fit", "--config", "callback_value.yaml", "--trainer.callbacks.patience", "5"],
        "callback_value.yaml: trainer.callbacks[0].init_args.patience: expected int, got 'high'",
    ),
    (
        ["fit", "--config", "bad_mode.yaml"],
        "bad_mode.yaml: trainer.callbacks[0]: building lightning.pytorch.callbacks.early_stopping.EarlyStopping "
        "failed: MisconfigurationException: `mode` can be min, max, got minimum",
    ),
    (
        ["fit", "--trainer.callbacks+=EarlyStoping"],
        "--trainer.callbacks+: unknown class 'EarlyStoping' (did you mean EarlyStopping?)",
    ),
    (["fit", "--config", "binary.yaml"], "binary.yaml: not a text file"),
    (["fit", "--config", "list.yaml"], "a config is a YAML mapping"),
    (["fit", "--config", "bomb.yaml"], "YAML alias bomb"),
    (["check", "--config", "bomb.yaml"], "YAML alias bomb"),
    (["fit", "--trainer.plugins", INLINE_BOMB], "--trainer.plugins: refused: its YAML aliases expand"),
    (["fit", "--model", INLINE_BOMB], "--model: refused: its YAML aliases expand"),
    (["fit", "--config", "missing.yaml"], "no such file: missing.yaml"),
    # a logger of one's own without the argument its class requires (jsonargparse named neither)
    (["fit", "--trainer.logger", "CSVLogger"], "--trainer.logger CSVLogger: CSVLogger needs save_dir"),
    (["fit", "--config", "csv_logger.yaml"], "csv_logger.yaml: trainer.logger[0]: CSVLogger needs save_dir"),
    (["test", "--run", "nosuch", "--ckpt_path", "best"], "--run nosuch: no such run under runs"),
    (["export", "--run", "nosuch"], "--run nosuch: no such run under runs"),
    (["fit", "--run", "../../escaped"], "--run '../../escaped': use a plain name"),
    (["fit", "--run", "/tmp/absolute"], "--run '/tmp/absolute': use a plain name"),
    (["fit", "--experiment", "../.."], "--experiment '../..': use a plain name"),
    (["fit", "--model.hidden_dim", "-4"], "hidden_dim must be a positive size, got -4"),
    (["fit", "--model.hidden_dim", "0"], "hidden_dim must be a positive size, got 0"),
    (["fit", "--model.dropout", "1.5"], "dropout must be in [0, 1)"),
    (
        ["test", "--ckpt_path", "notatorch.ckpt"],
        "notatorch.ckpt is a zip archive but not a PyTorch checkpoint",
    ),
    (["test", "--ckpt_path", "pickled.ckpt"], "pickled.ckpt is refused as unsafe"),
    (["predict", "--ckpt_path", "pickled.ckpt"], "pickled.ckpt is refused as unsafe"),
    (["test", "--resume", "auto", "--ckpt_path", "notatorch.ckpt"], "not a PyTorch checkpoint"),
    (
        ["fit", "--trainer.max_epochs", "2", "--overwrite", "true", "--resume", "auto", "--run", "x"],
        "pass only one",
    ),
    (
        ["fit", "--trainer.max_epochs", "1", "--trainer.default_root_dir", "afile/runs"],
        "afile is a file, not a folder",
    ),
    (
        ["export", "--ckp", "notatorch.ckpt"],
        "unrecognized arguments: --ckp notatorch.ckpt (did you mean --ckpt?)",
    ),
    (["export", "--ckpt", "notatorch.ckpt"], "not a PyTorch checkpoint"),
    (
        ["fit", "--model", "Clasifier"],
        "--model: unknown class 'Clasifier' (did you mean Classifier?)",
    ),
    (
        ["fit", "--model", "Nothing"],
        "unknown class 'Nothing': use a litforge short name (e.g. Classifier) or a full",
    ),
    (
        ["export", "--ckpt", "cfg.yaml"],
        "--ckpt: cfg.yaml is a text file, not a checkpoint (a config file goes to",
    ),
    (["test", "--ckpt_path", "cfg.yaml"], "cfg.yaml is a text file, not a checkpoint"),
    (["export", "--ckpt", "pickled.ckpt"], "pickled.ckpt is refused as unsafe"),
    (["export", "--ckpt", "pickled.ckpt", "--model-class", "collections.OrderedDict"], "refused as unsafe"),
    (["tune", "--space", "binary.yaml"], "binary.yaml"),
    (["tune", "--space", "list.yaml"], "list.yaml"),
    (["serve", "export", "--batch-timeout", "-1"], "--batch-timeout"),
    (["serve", "export", "--max-body-bytes", "-1"], "--max-body-bytes"),
    (["predict", "--artifact", "export", "--input", "missing.csv"], "export"),
]


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-inputs")
    _write_inputs(folder)
    return folder


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(inputs: Path, args: list[str], words: str) -> None:
    before = _tree(inputs)
    result = run_cli(*args, cwd=inputs, timeout=120)
    errors = [line for line in result.stderr.splitlines() if line.startswith("litforge: error:")]
    assert result.returncode == 2, result.output
    assert len(errors) == 1 and words in errors[0], result.stderr
    assert "GPU available" not in result.output, "refused only after the trainer was built"
    assert "eed set" not in result.output and "No seed found" not in result.output  # the error comes alone
    assert "Traceback" not in result.output and 'File "' not in result.stderr  # no frames either
    assert _tree(inputs) == before, "a bad input wrote or changed files"
    assert not (inputs / MARKER).exists(), "a crafted file ran code"


def test_the_pickle_payload_is_real(tmp_path: Path) -> None:
    """The crafted checkpoint above does run its payload when unpickled unsafely (so the test can fail)."""
    torch.save({"evil": _Payload()}, tmp_path / "p.ckpt")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        torch.load(tmp_path / "p.ckpt", weights_only=False)
    finally:
        os.chdir(cwd)
    assert (tmp_path / MARKER).exists()
