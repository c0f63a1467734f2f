"""Space-file validation: every bad entry is one clear exit-2 error before any trial runs."""

from __future__ import annotations

import copy

import pytest
import yaml
from tune_helpers import LR_SPACE

from litforge.errors import UsageError
from litforge.tune.fit_config import SearchConfig
from litforge.tune.rungs import Rung
from litforge.tune.space import load_space, parse_space


def _with_param(key: str, spec: object) -> dict:
    space = copy.deepcopy(LR_SPACE)
    space["params"] = {key: spec}
    return space


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            _with_param("model.lr", {"type": "gaussian", "low": 0, "high": 1}),
            "params.model.lr: unknown type 'gaussian'",
        ),
        (
            _with_param("model.lr", {"type": "float", "low": 0.1, "high": 0.1}),
            "params.model.lr: low (0.1) must be below high (0.1)",
        ),
        (
            _with_param("model.lr", {"type": "float", "low": 0.0, "high": 0.1, "log": True}),
            "params.model.lr: log: true needs positive bounds",
        ),
        (
            _with_param("data.batch_size", {"type": "categorical", "choices": []}),
            "params.data.batch_size: 'choices' must be a non-empty list",
        ),
        (
            _with_param("model.hidden_dim", {"type": "int", "low": 16.5, "high": 64}),
            "params.model.hidden_dim: 'low' must be an integer",
        ),
        (
            _with_param("model.lr", {"type": "float", "low": 0.1, "high": 1, "stp": 0.1}),
            "params.model.lr: unknown field 'stp'",
        ),
        ({**LR_SPACE, "direction": "down"}, "'direction: down' is not one of minimize, maximize"),
        ({**LR_SPACE, "direction": "max"}, "is not one of minimize, maximize (did you mean maximize?)"),
        ({**LR_SPACE, "pruner": "asha"}, "'pruner: asha' is not one of none, median"),
        ({"direction": "minimize", "params": LR_SPACE["params"]}, "'metric' must name a logged metric"),
        ({**LR_SPACE, "params": {}}, "'params' must map config keys"),
        ({**LR_SPACE, "rungs": "1:4,0:3"}, "'rungs:' 1:4,0:3: expected EPOCHS:K pairs"),
        ({**LR_SPACE, "rungs": "6:3,1:4"}, "the rungs' epochs must increase"),
        ({**LR_SPACE, "rungs": 64}, 'write the rungs as a quoted string, e.g. "1:4,6:3"'),  # YAML's 1:4
    ],
)
def test_bad_entries_name_the_entry(space: dict, message: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_space(space)
    assert message in str(error.value)


def test_good_space_parses_with_defaults() -> None:
    space = parse_space({**LR_SPACE, "n_trials": 7, "sampler": "random"})
    assert [p.key for p in space.params] == ["model.lr", "model.hidden_dim"]
    assert space.params[0].log and space.params[1].step == 16
    assert (space.n_trials, space.sampler, space.pruner, space.maximize) == (7, "random", None, False)
    assert parse_space({**LR_SPACE, "pruner": "rungs", "rungs": "1:4, 6:3"}).rungs == (Rung(1, 4), Rung(6, 3))
    assert space.params[1].grid() == [16, 32, 48, 64]


def test_keys_are_checked_against_the_fit_config() -> None:
    with pytest.raises(
        UsageError,
        match=r"params.model.hiden_dim: no such key in the fit config .*; did you mean model\.hidden_dim\?",
    ):
        SearchConfig(
            [], parse_space(_with_param("model.hiden_dim", {"type": "int", "low": 8, "high": 16})), 0
        )
    # A value the configured class rejects (hidden_dim is an int) fails before any trial.
    with pytest.raises(UsageError, match=r"params.model.hidden_dim: the fit config rejects 8.5"):
        SearchConfig(
            [], parse_space(_with_param("model.hidden_dim", {"type": "float", "low": 8.5, "high": 16})), 0
        )
    with pytest.raises(UsageError, match=r"params.model.arch: the fit config rejects 'rnn'"):
        SearchConfig(
            [], parse_space(_with_param("model.arch", {"type": "categorical", "choices": ["mlp", "rnn"]})), 0
        )


def test_fit_config_fixes_the_seed_and_keeps_fit_flags() -> None:
    fit = SearchConfig(
        ["--seed_everything", "true", "--trainer.max_epochs", "4"], parse_space(LR_SPACE), seed=7
    )
    assert fit.fit_args[-2:] == ["--seed_everything", "7"]
    config = fit.resolve({"model.lr": 0.005, "model.hidden_dim": 48})
    assert (config.seed_everything, config.trainer.max_epochs) == (7, 4)
    assert (config.model.init_args.lr, config.model.init_args.hidden_dim) == (0.005, 48)


def test_cli_rejects_a_bad_space_with_exit_2_and_writes_nothing(cli, tmp_path, write_space) -> None:
    path = write_space(_with_param("model.learning_rate", {"type": "float", "low": 1e-3, "high": 1e-1}))
    before = path.read_text()
    result = cli("tune", "--space", str(path), "--n-trials", "2")
    assert result.returncode == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and f"{path}: params.model.learning_rate: no such key in the fit config" in lines[0]
    )
    assert path.read_text() == before
    assert not (tmp_path / "runs").exists()


def test_cli_rejects_unknown_flags_with_exit_2(cli, write_space) -> None:
    path = write_space(LR_SPACE)
    result = cli("tune", "--space", str(path), "--n-trails", "2")
    assert result.returncode == 2
    assert "unrecognized argument --n-trails (did you mean --n-trials?)" in result.stderr
    result = cli("tune", "--space", str(path), "--workers", "0")
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr
    # pruner flags that do not go together: each one line, exit 2
    for flags, message in (
        (["--grace-period", "2"], "the rungs pruner (the default) takes --rungs"),
        (["--pruner", "median", "--rungs", "1:3"], "--rungs goes with --pruner rungs"),
        (["--rungs", "3:3,1:3"], "the rungs' epochs must increase"),
    ):
        result = cli("tune", "--space", str(path), *flags)
        assert result.returncode == 2 and message in result.stderr, (flags, result.stderr)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"\x87\x9f\x00\xffPK\x03\x04" * 8,
            "not a text file (the byte at offset 0 is not UTF-8)",
        ),  # a binary file
        ('metric: "caf\xe9"\n'.encode("latin-1"), "not a text file (the byte at offset 12 is not UTF-8)"),
        (b"", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"- metric\n- params\n", "expected a mapping with 'metric', 'direction' and 'params', got a list"),
        (b"metric: val_loss\nparms: {}\n", "unknown entry 'parms'"),
        (b"metric: [unclosed\n", "not valid YAML"),
        (b"metric: val_loss\n\0\n", "not valid YAML"),
        (
            b"metric: val_loss\nparams:\n  model.lr: {type: float, low: 1.0e-3, high: 0.1}\n"
            b"  model.lr: {type: float, low: 1.0e-4, high: 0.1}\n",
            "'model.lr' appears twice (line 4)",
        ),
        (
            b"metric: val_loss\nparams:\n  model.lr: {type: float, low: tiny, high: 0.1}\n",
            "params.model.lr: 'low' must be a number, got the string 'tiny'",
        ),
        (
            b"metric: val_loss\nn_trials: 0\nparams:\n  model.lr: {type: float, low: 1.0e-4, high: 0.1}\n",
            "'n_trials' must be a positive integer, got 0",
        ),
    ],
    ids=[
        "binary",
        "latin-1",
        "empty",
        "comment-only",
        "list",
        "unknown-key",
        "bad-yaml",
        "nul",
        "duplicate",
        "not-a-number",
        "zero-trials",
    ],
)
def test_bad_space_files_are_one_line_naming_the_file(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_bytes(content)
    with pytest.raises(UsageError) as error:
        load_space(path)
    assert str(path) in str(error.value) and message in str(error.value), str(error.value)
    assert path.read_bytes() == content


def test_a_folder_as_space_file_is_named_as_a_folder(tmp_path) -> None:
    with pytest.raises(UsageError, match=r"--space .*: a folder, expected a YAML file"):
        load_space(tmp_path)


def test_cli_binary_space_file_is_one_line_exit_2(cli, tmp_path) -> None:
    path = tmp_path / "model.ckpt"
    path.write_bytes(bytes(range(256)) * 4)
    result = cli("tune", "--space", str(path), "--n-trials", "1")
    assert result.returncode == 2, result.output[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "not a text file" in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_stacked_configs_apply_in_order_as_in_fit(cli, tmp_path, write_space) -> None:
    """``tune -c a.yaml --config b.yaml``: both files apply (b over a), as ``fit`` stacks them; the last
    one alone would tune another model silently."""
    (tmp_path / "a.yaml").write_text("model:\n  init_args:\n    hidden_dim: 24\n    dropout: 0.2\n")
    (tmp_path / "b.yaml").write_text(
        "model:\n  init_args:\n    dropout: 0.3\n"
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 3\n  limit_val_batches: 2\n"
    )
    space = write_space(
        {"metric": "val_loss", "params": {"model.lr": {"type": "float", "low": 0.001, "high": 0.01}}}
    )
    result = cli("tune", "-c", "a.yaml", "--config", "b.yaml", "--space", str(space), "--n-trials", "1",
                 "--no-plots", "--out", "tuned")  # fmt: skip
    assert result.returncode == 0, result.output
    best = yaml.safe_load((tmp_path / "tuned" / "best.yaml").read_text())
    assert best["model"]["init_args"]["hidden_dim"] == 24 and best["model"]["init_args"]["dropout"] == 0.3
    assert best["trainer"]["max_epochs"] == 1
    # study.db alone, copied away from its write-ahead log, holds the study
    import shutil

    import optuna

    shutil.copy(tmp_path / "tuned" / "study.db", tmp_path / "copy.db")
    assert len(optuna.load_study(study_name="space", storage=f"sqlite:///{tmp_path / 'copy.db'}").trials) == 1


def test_a_float_bound_yaml_reads_as_text_is_taken_as_the_number_it_spells(tmp_path) -> None:
    """YAML 1.1 reads 1e-4 (no dot) as a string; the fit config's parser takes it as a number, and so does a
    space (it was refused: 'write 1.0e-4')."""
    path = tmp_path / "space.yaml"
    path.write_text(
        "metric: val_loss\nparams:\n  model.lr: {type: float, low: 1e-5, high: 1e-2, log: true}\n"
    )
    (param,) = load_space(path).params
    assert (param.low, param.high) == (1e-5, 1e-2)
