"""A real OpenAI-compatible server for tests and benchmarks: llama-cpp-python's ``llama_cpp.server`` serving a GGUF
file on a free loopback port, started and stopped by the caller."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from recgen.testing.postgres import free_port


class LlamaServer:
    def __init__(self, gguf: str | Path, log: str | Path, *, threads: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port",
               str(self.port), "--n_threads", str(threads), "--n_ctx", "2048", "--logits_all", "true"]  # fmt: skip
        self.log = Path(log)
        self._log = open(self.log, "wb")  # a pipe would fill up and block the server
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait(self, timeout: float = 120.0) -> LlamaServer:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/v1/models", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"llama_cpp.server did not start within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, as a crash would."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@contextmanager
def llama_servers(gguf: str | Path, folder: str | Path, n: int = 1, *, threads: int = 1) -> Iterator[list[LlamaServer]]:
    """``n`` servers started together (they load in parallel), stopped on exit."""
    servers = [LlamaServer(gguf, Path(folder) / f"server{i}.log", threads=threads) for i in range(n)]
    try:
        for s in servers:
            s.wait()
        yield servers
    finally:
        for s in servers:
            s.stop()
