"""Run rundeps with stderr on a real terminal (a pty), stdout on a pipe."""

import os
import subprocess
import sys


def run_with_terminal_stderr(*args, timeout=120):
    """``python -m rundeps ARGS`` with stderr on a pty: (the finished
    process, with ``stdout`` as bytes; every byte the terminal received)."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "rundeps", *args], stdout=subprocess.PIPE, stderr=slave,
                              timeout=timeout)
        os.close(slave)
        slave = None
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return proc, seen
