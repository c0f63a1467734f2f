"""A fork server for the test suite's ``litforge`` runs: it imports Lightning and litforge once, then forks a
fresh process per command, so each run skips the ~4 s of imports and is otherwise the console script.

Each child is a real process: its own session, working folder, stdin from /dev/null, stdout and stderr
written to files at the file-descriptor level, ``sys.argv[0]`` and ``sys.path[0]`` as the console script
sets them, ``sys.exit(main())`` and a normal interpreter exit (atexit handlers included), and an exit
status that says when a signal ended it. The server starts with the run's whole environment (one server
per environment), so what modules read at import time is the same. ``cli_helpers.run_cli`` drives it;
``LITFORGE_TESTS_FRESH_PROCESSES=1`` runs every command as a plain subprocess instead.

Protocol (one request at a time): a JSON line ``{"args", "cwd", "stdout", "stderr", "argv0"}`` on the
request pipe; the replies are ``{"pid": N}`` when the child starts and ``{"returncode": N}`` when it ends.
"""

from __future__ import annotations

import json
import os
import sys


def _read_line(fd: int) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:  # the client is gone
            return b""
        line += chunk
    return line


def _send(fd: int, message: dict) -> None:
    os.write(fd, (json.dumps(message) + "\n").encode())


def _become_the_command(request: dict, requests: int, replies: int) -> None:
    """In the forked child: set the process up as ``litforge <args>`` would start, then run it."""
    os.close(requests)
    os.close(replies)
    os.setsid()  # its own process group: a timeout kills it and whatever it started
    os.chdir(request["cwd"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_TRUNC),
    ):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = [request["argv0"], *request["args"]]
    sys.path[0] = os.path.dirname(request["argv0"])  # as the console script's own folder
    from litforge.cli import main

    sys.exit(main())  # unwinds to the interpreter's exit, as in the console script


def serve(requests: int, replies: int) -> None:
    import lightning.pytorch  # noqa: F401  (the imports every training command pays for)

    import litforge.cli
    import litforge.engine.runtime  # noqa: F401

    sys.stdout.flush()
    sys.stderr.flush()
    _send(replies, {"ready": True})
    while line := _read_line(requests):
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_the_command(request, requests, replies)
        _send(replies, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(replies, {"returncode": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
