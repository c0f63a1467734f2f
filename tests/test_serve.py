"""``litforge serve`` (both backends): a real server in a subprocess on a free loopback port.

Health, predictions equal to the eager model, dynamic batching (fewer model calls than requests), a 4xx
for every kind of bad request with the server healthy afterwards, and a graceful SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from litforge.export.loading import load_checkpoint
from serve_helpers import log_tail, start_server, stop_server

READ_TIMEOUT_S = 2


@pytest.fixture(scope="module")
def export_dir(trained_digits_run: Path) -> Path:
    from cli_helpers import run_cli

    out = trained_digits_run / "export-serve"
    ckpt = trained_digits_run / "checkpoints" / "best.ckpt"
    result = run_cli(
        "export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(out), cwd=trained_digits_run
    )
    assert result.returncode == 0, result.output
    return out


@pytest.fixture(scope="module", params=["fastapi", "litserve"])
def server(
    request: pytest.FixtureRequest,
    trained_digits_run: Path,
    export_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
):
    log = (tmp_path_factory.mktemp("serve") / "server.log").open("w+")
    flags = ("--max-batch-size", "16", "--batch-timeout", "0.2", "--max-rows", "32")
    flags += ("--max-body-bytes", "65536", "--threads", "1", "--read-timeout", str(READ_TIMEOUT_S))
    process, base = start_server(export_dir, log, request.param, *flags)
    yield {"base": base, "process": process, "run": trained_digits_run, "log": log}
    stop_server(process)


def _rows(n: int, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).integers(0, 17, size=(n, 64)).astype(float).tolist()


def test_health_info_and_predictions_equal_eager(server) -> None:
    assert httpx.get(f"{server['base']}/health").status_code == 200
    assert httpx.get(f"{server['base']}/health").text == "ok"
    info = httpx.get(f"{server['base']}/info").json()
    assert info["model"]["inputs"][0]["shape"] == ["batch", 64]
    assert info["model"]["served_format"] == "onnx"  # the default resolved, on both backends
    rows = _rows(10)
    response = httpx.post(f"{server['base']}/predict", json={"inputs": rows}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    module = load_checkpoint(server["run"] / "checkpoints" / "best.ckpt").module
    with torch.inference_mode():
        probabilities = module(torch.tensor(rows, dtype=torch.float32)).softmax(-1).numpy()
    assert body["predictions"] == probabilities.argmax(-1).tolist()
    np.testing.assert_allclose(body["probabilities"], probabilities, atol=1e-5)
    assert body["labels"] == [str(p) for p in body["predictions"]]


def test_info_publishes_no_local_paths(server) -> None:
    info = httpx.get(f"{server['base']}/info").text
    assert str(server["run"]) not in info and str(Path.home()) not in info
    assert httpx.get(f"{server['base']}/info").json()["model"]["source"]["checkpoint"] == "best.ckpt"


@pytest.mark.parametrize("sent", ["partial headers", "partial body", "nothing"])
def test_a_request_not_received_in_time_is_disconnected(server, sent: str) -> None:
    """Slowloris: a client that never finishes its request is disconnected after --read-timeout (2 s),
    well before the socket's own 60 s timeout; it used to be kept open as long as the client liked."""
    headers = b"POST /predict HTTP/1.1\r\nHost: localhost\r\n"
    data = {
        "partial headers": headers,
        "partial body": headers + b"Content-Length: 100\r\n\r\n{",
        "nothing": b"",
    }
    host, port = server["base"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(data[sent])
        assert sock.recv(1024) == b"", "the server answered instead of closing"  # recv times out if kept open
    assert httpx.get(f"{server['base']}/health").status_code == 200


def test_concurrent_requests_are_batched(server) -> None:
    # 16 clients on open connections send at the same moment (twice each): the requests queue while a batch
    # runs. Fresh connections per request arrive staggered by their set-up, and a server that keeps up
    # with them rightly answers each alone (the batcher waits only for the concurrency it sees).
    clients = [httpx.Client(base_url=server["base"], timeout=60) for _ in range(16)]
    start = threading.Barrier(len(clients))

    def send(index: int) -> list[httpx.Response]:
        client = clients[index]
        assert client.get("/health").status_code == 200  # connection open before the start
        start.wait(timeout=60)
        return [client.post("/predict", json={"inputs": _rows(1, 2 * index + k)}) for k in range(2)]

    before = httpx.get(f"{server['base']}/metrics").json()
    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            responses = [r for pair in pool.map(send, range(len(clients))) for r in pair]
    finally:
        for client in clients:
            client.close()
    assert all(r.status_code == 200 for r in responses)
    after = httpx.get(f"{server['base']}/metrics").json()
    requests = after["requests"] - before["requests"]
    calls = after["model_calls"] - before["model_calls"]
    assert requests == 32
    assert calls < requests, f"{calls} model calls for {requests} requests: no batching"


def _row(value: object) -> str:
    return "[" + ",".join([json.dumps(value) if not isinstance(value, str) else value] + ["1"] * 63) + "]"


BAD_REQUESTS = {
    "not json": (b"{inputs: [", 400),
    "empty body": (b"", 400),
    "missing inputs": (b'{"rows": [[1, 2]]}', 422),
    "not an object": (b"[1, 2, 3]", 422),
    "empty inputs": (b'{"inputs": []}', 422),
    "wrong row length": (b'{"inputs": [[1, 2, 3]]}', 422),
    "non-numeric value": (('{"inputs": [' + _row('"seven"') + "]}").encode(), 422),
    "boolean value": (('{"inputs": [' + _row("true") + "]}").encode(), 422),
    "NaN": (('{"inputs": [' + _row("NaN") + "]}").encode(), 422),
    "infinity": (('{"inputs": [' + _row("-Infinity") + "]}").encode(), 422),
    "too many rows": (json.dumps({"inputs": [[1] * 64] * 33}).encode(), 413),
    "one row not wrapped in a list": (json.dumps({"inputs": [1] * 64}).encode(), 422),
    "a nested row of another shape": (json.dumps({"inputs": [[[1] * 8] * 7]}).encode(), 422),
    "body over the limit": (b'{"inputs": [' + b" " * 70_000 + b"]}", 413),
    "huge integer": (('{"inputs": [' + _row("1" + "0" * 5000) + "]}").encode(), 400),
}


def test_an_onnx_server_does_not_load_torch(server) -> None:
    """Serving an ONNX artifact needs onnxruntime only: no server process maps libtorch, which costs
    seconds of start-up and hundreds of MiB per worker (benchmarks/serve_startup.py)."""
    processes = [server["process"].pid, *_children(server["process"].pid)]
    mapped = {
        pid: Path(f"/proc/{pid}/maps").read_text() for pid in processes if Path(f"/proc/{pid}").exists()
    }
    assert not [pid for pid, maps in mapped.items() if "libtorch" in maps], log_tail(server["log"])


def test_predict_takes_post_only(server) -> None:
    response = httpx.get(f"{server['base']}/predict", timeout=30)
    assert response.status_code == 405, response.text


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_gets_4xx_and_server_stays_healthy(server, name: str) -> None:
    body, status = BAD_REQUESTS[name]
    before = httpx.get(f"{server['base']}/metrics").json()
    response = httpx.post(f"{server['base']}/predict", content=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert httpx.get(f"{server['base']}/health").status_code == 200
    good = httpx.post(f"{server['base']}/predict", json={"inputs": _rows(1)}, timeout=30)
    assert good.status_code == 200
    # /metrics counts the refusal too, not only the requests that reached the model
    after = httpx.get(f"{server['base']}/metrics").json()
    answered = {key: after["answers"][key] - before["answers"][key] for key in after["answers"]}
    assert answered == {"2xx": 1, "4xx": 1, "5xx": 0}
    assert after["requests"] - before["requests"] == 1


def test_sigterm_answers_in_flight_requests_then_exits(server) -> None:
    """Requests waiting in the 0.2 s batch window when SIGTERM arrives are still answered; exit code 0."""
    ready = threading.Barrier(5)

    def in_flight(seed: int) -> int:
        with httpx.Client(base_url=server["base"], timeout=60) as client:
            assert client.get("/health").status_code == 200  # the keep-alive connection is accepted
            ready.wait()
            return client.post("/predict", json={"inputs": _rows(1, seed)}).status_code

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(in_flight, i) for i in range(4)]
        ready.wait(timeout=60)
        time.sleep(0.1)  # the requests are sent and wait for their batch
        server["process"].send_signal(signal.SIGTERM)
        statuses = [f.result() for f in futures]
    assert statuses == [200] * 4
    assert server["process"].wait(timeout=90) == 0, log_tail(server["log"])
    assert "Traceback" not in log_tail(server["log"])


def test_litserve_monitoring_traceback_is_dropped_only_when_its_manager_is_gone() -> None:
    """SIGTERM to the process group ends LitServe's manager process under the server (a race, seen once in
    CI): its monitoring thread's "Monitoring worker crashed" traceback is dropped; any other crash is kept."""
    from litforge.serve.litserve_backend import _ManagerGoneAtShutdown  # the litserve extra

    def record(message: str, error: BaseException) -> logging.LogRecord:
        return logging.LogRecord(
            "litserve.server", logging.ERROR, "server.py", 1, message, None, (type(error), error, None)
        )

    quiet = _ManagerGoneAtShutdown()
    assert not quiet.filter(record("Monitoring worker crashed", ConnectionResetError(104, "reset by peer")))
    assert not quiet.filter(record("Monitoring worker crashed", EOFError()))
    assert quiet.filter(record("Monitoring worker crashed", KeyError("worker")))  # a real bug stays visible
    assert quiet.filter(record("Worker died", ConnectionResetError()))


@pytest.mark.parametrize("backend", ["fastapi", "litserve"])
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_to_every_server_process_ends_it_quietly(export_dir, tmp_path, backend, stop) -> None:
    """Ctrl+C in a terminal, or systemd's default KillMode, signals every process of the server at once:
    it still answers the request in flight and stops in order, exit code 0, and no process prints a traceback (LitServe's queue manager used
    to die under its model worker, and its HTTP process re-raised the signal as a KeyboardInterrupt)."""
    with (tmp_path / "server.log").open("w+") as log:
        flags = ("--threads", "1", "--max-batch-size", "16", "--batch-timeout", "0.5")
        process, base = start_server(export_dir, log, backend, *flags)
        try:
            with ThreadPoolExecutor(1) as pool:  # a request waiting in its batch window when the signal comes
                answer = pool.submit(httpx.post, f"{base}/predict", json={"inputs": _rows(1)}, timeout=60)
                time.sleep(0.2)
                os.killpg(process.pid, stop)
                assert answer.result().status_code == 200
            assert process.wait(timeout=90) == 0, log_tail(log)
            time.sleep(1)  # what the other processes print on their way out
            assert "Traceback" not in log_tail(log) and "Error" not in log_tail(log), log_tail(log)
        finally:
            stop_server(process)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the server's processes in /proc")
@pytest.mark.parametrize("backend", ["fastapi", "litserve"])
def test_kill_9_ends_every_server_process_and_frees_the_port(
    backend: str, export_dir: Path, tmp_path: Path
) -> None:
    """With two workers, kill -9 of ``litforge serve`` leaves no process behind answering on the port."""
    with (tmp_path / "server.log").open("w+") as log:
        process, base = start_server(export_dir, log, backend, "--workers", "2", "--threads", "1")
        helpers = _children(process.pid)
        assert helpers, "expected worker processes"
        process.kill()
        process.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in helpers):
            time.sleep(0.2)
        alive = [pid for pid in helpers if Path(f"/proc/{pid}").exists()]
        assert not alive, f"still running after kill -9 of the server: {alive}\n{log_tail(log)}"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/health", timeout=2)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--batch-timeout", "-1", "--batch-timeout must be >= 0 seconds, got -1.0"),
        ("--max-body-bytes", "-1", "--max-body-bytes must be >= 1, got -1"),
        ("--read-timeout", "0", "--read-timeout must be > 0 seconds, got 0.0"),
    ],
)
def test_bad_limits_exit_2_naming_the_flag(cli, tmp_path: Path, flag: str, value: str, message: str) -> None:
    result = cli("serve", str(tmp_path), flag, value, timeout=60)
    assert result.returncode == 2, result.output
    assert result.stderr.strip() == f"litforge: error: {message}"


def test_a_port_in_use_exits_2_before_claiming_to_serve(cli, export_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", str(export_dir), "--port", str(port), timeout=60)
    assert result.returncode == 2, result.output
    assert result.stderr.strip() == (
        f"litforge: error: --host 127.0.0.1 --port {port}: cannot listen there: Address already in use"
    )
    assert "serving" not in result.stdout


def test_image_rows_may_come_nested_as_info_shows_them() -> None:
    """An image model's input ``[batch, 3, 4, 4]``: a row is 48 numbers or lists nested [3][4][4], as the
    ``.npy`` files of ``predict --artifact`` hold them; a nested row of another shape names where."""
    import numpy as np

    from litforge.serve.codecs import RequestError, RequestLimits, decode_rows, validate

    limits = RequestLimits(row_shape=(3, 4, 4))
    image = np.arange(48, dtype=np.float32).reshape(3, 4, 4)
    payload = {"inputs": [image.tolist(), image.ravel().tolist()]}
    validate(payload, limits)
    assert np.array_equal(
        decode_rows(payload["inputs"], (3, 4, 4), np.dtype("float32")), np.stack([image, image])
    )
    with pytest.raises(
        RequestError, match=r"inputs\[0\]\[2\] has 3 entries where a row nested as \[3, 4, 4\]"
    ):
        validate({"inputs": [[image[0].tolist(), image[1].tolist(), image[2, :3].tolist()]]}, limits)
    with pytest.raises(RequestError, match=r"inputs\[0\] has 47 values; the model takes 48 \(or nested"):
        validate({"inputs": [list(range(47))]}, limits)
    # one image sent as the whole of inputs, not as a list of one: say how to send it
    with pytest.raises(RequestError, match=r"inputs is a list of rows: send one row as \[row\]"):
        validate({"inputs": image.tolist()}, limits)


def test_host_takes_localhost_and_ip_addresses_only() -> None:
    import argparse

    from litforge.cli.serve import host_address

    assert host_address("localhost") == "127.0.0.1"  # bound as loopback, as the default
    assert [host_address(a) for a in ("127.0.0.1", "0.0.0.0", "::", "::1", "10.1.2.3")] == [
        "127.0.0.1", "0.0.0.0", "::", "::1", "10.1.2.3"
    ]  # fmt: skip
    with pytest.raises(argparse.ArgumentTypeError, match="'lcalhost' is not an IP address"):
        host_address("lcalhost")


def test_a_body_that_is_not_an_object_is_named_as_such() -> None:
    """``[[1]]`` was answered "missing 'inputs'" although nothing in it could hold a key."""
    from litforge.serve.codecs import RequestError, RequestLimits, validate

    with pytest.raises(RequestError, match=r"the body is a list, not a JSON object: send \{\"inputs\""):
        validate([[1.0, 2.0]], RequestLimits(row_shape=(2,)))
    with pytest.raises(RequestError, match="missing 'inputs'"):
        validate({"rows": [[1.0, 2.0]]}, RequestLimits(row_shape=(2,)))
    # a blank text is refused, as predict --artifact refuses a blank line (it was answered a guess)
    with pytest.raises(RequestError, match=r"texts\[1\] is blank: send the text to predict"):
        validate({"texts": ["great film", "  "]}, RequestLimits(request_format="texts"))
    # texts sent to an export of token ids say so, not only that 'inputs' is missing
    with pytest.raises(
        RequestError, match=r"missing 'inputs' \(this export takes numbers, not texts: see /info\)"
    ):
        validate({"texts": ["great film"]}, RequestLimits(row_shape=(2,)))
