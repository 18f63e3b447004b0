"""Caller side of the sandbox: warm zygote processes shared by all threads of this process."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from codedpo_assets.sandbox import cgroups as cgroup_dirs

ZYGOTE = Path(__file__).with_name("zygote")  # a directory run as a script: its __main__.py
SAFE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
UID_BASE = 1_000_000  # sandbox uids: UID_BASE + pid*256 + index (< 256 zygotes), unique among live processes


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the candidate): the zygote died or stopped answering."""


_indices = itertools.count()  # process-wide: two pools' zygotes never share a uid or a cgroup


class Zygote:
    """One warm zygote process; ``call`` is not thread-safe (the pool hands it to one thread)."""

    def __init__(self, index: int, use_cgroup: bool = True) -> None:
        if not 0 <= index < 256:
            raise ValueError(f"at most 256 zygotes per process, got index {index}")
        self.uid = UID_BASE + (os.getpid() % (1 << 22)) * 256 + index
        self.index, self.use_cgroup = index, use_cgroup
        self.cgroup: cgroup_dirs.Cgroup | None = None
        self._start()

    def _start(self) -> None:
        self.cgroup, why_not = cgroup_dirs.create(self.index) if self.use_cgroup else (None, "disabled")
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-S", "-P", str(ZYGOTE), str(self.uid), json.dumps(self.cgroup.spec if self.cgroup else {})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=SAFE_ENV,
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes (PIPE above)
        self._stdin, self._stdout = self.proc.stdin, self.proc.stdout
        hello = self._exchange({"op": "hello"}, timeout=60)
        self.isolation: dict[str, Any] = hello["isolation"] | (
            {"cgroup": self.cgroup.dirs[0].name} if self.cgroup else {"cgroup": why_not}
        )

    def _read(self, n: int, deadline: float) -> bytes:
        fd = self._stdout.fileno()
        data = b""
        while len(data) < n:
            remaining = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                raise TimeoutError("zygote did not answer in time")
            chunk = os.read(fd, n - len(data))
            if not chunk:
                raise EOFError("zygote exited")
            data += chunk
        return data

    def _exchange(self, request: dict, timeout: float) -> dict:
        payload = json.dumps(request).encode()
        self._stdin.write(struct.pack(">I", len(payload)) + payload)
        self._stdin.flush()
        deadline = time.monotonic() + timeout
        (size,) = struct.unpack(">I", self._read(4, deadline))
        reply = json.loads(self._read(size, deadline))
        if "fatal" in reply:
            raise SandboxError(reply["fatal"])
        return reply

    def call(self, request: dict, timeout: float) -> dict:
        """Send one request; on a dead or hung zygote, restart it and raise SandboxError."""
        try:
            return self._exchange(request, timeout)
        except (OSError, EOFError, TimeoutError, ValueError, struct.error) as exc:
            self.close()
            self._start()
            raise SandboxError(f"zygote failed ({type(exc).__name__}: {exc}); restarted") from exc

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.cgroup is not None:
            cgroup_dirs.remove(self.cgroup)
            self.cgroup = None


class Pool:
    """``size`` zygotes (default: one per core); threads borrow one per candidate.

    ``cgroups=False`` skips the per-zygote cgroups (CPU time then comes from getrusage)."""

    def __init__(self, size: int | None = None, cgroups: bool = True) -> None:
        self.size = size or os.cpu_count() or 1
        if cgroups:
            cgroup_dirs.remove_leftovers()  # of processes that were killed before they could clean up
        self.zygotes = [Zygote(next(_indices) % 256, cgroups) for _ in range(self.size)]
        self._idle: queue.Queue[Zygote] = queue.Queue()
        for z in self.zygotes:
            self._idle.put(z)

    @property
    def isolation(self) -> dict[str, Any]:
        return self.zygotes[0].isolation

    def call(self, request: dict, timeout: float) -> dict:
        zygote = self._idle.get()
        try:
            return zygote.call(request, timeout)
        finally:
            self._idle.put(zygote)

    def close(self) -> None:
        for z in self.zygotes:
            z.close()


_pool: Pool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def shared_pool() -> Pool:
    """The process-wide pool, started on first use (and again after a fork)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = Pool(), os.getpid()
        return _pool


@atexit.register
def _shutdown() -> None:
    if _pool is not None and _pool_pid == os.getpid():
        _pool.close()
