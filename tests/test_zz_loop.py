import pytest
from cli_helpers import CONFIGS

@pytest.mark.parametrize("i", range(60))
def test_loop(cli, tmp_path, i):
    r = cli("fit", "--config", str(CONFIGS / "profile.yaml"), "--run", "r", fresh_process=True)
    assert r.returncode == 0, r.returncode
