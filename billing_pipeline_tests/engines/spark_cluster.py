"""A Spark standalone cluster on loopback, started from pyspark's own jars: a master and N workers, each its own JVM
(and each worker's executor another JVM, with its own Python workers), optionally a Spark Connect server as the
cluster's driver. Used by the Spark Connect test (test_spark_cluster.py) and the scaling benchmark
(benchmarks/run_benchmark.py --approaches ... spark-cluster); nothing here downloads anything.

    with StandaloneCluster(tmp / "cluster", workers=2) as cluster:
        os.environ["BILLING_SPARK_MASTER"] = cluster.master_url      # spark://127.0.0.1:<port>
        ...
        with cluster.connect_server() as remote:                     # sc://127.0.0.1:<port>
            ...

Every process is started in its own process group and stopped by that group's id when the block ends, so an
executor a worker spawned goes with it. Logs are files under the cluster's folder (named in every error).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent  # pyspark's bin/, sbin/ and jars/ (spark-connect included since 4.0)
CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"


def spark_test_settings() -> dict[str, str]:
    """The tests' Spark settings (data/spark-conf/spark-defaults.conf, which conftest.py makes the tests' own
    sessions read), for a Connect server started with a conf folder of its own."""
    lines = (Path(__file__).resolve().parents[1] / "data" / "spark-conf" / "spark-defaults.conf").read_text()
    return dict(line.split(None, 1) for line in lines.splitlines() if line.strip() and not line.startswith("#"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def driver_environment() -> dict[str, str]:
    """What a driver (the test's or the benchmark's Python, or the Connect server) needs in its environment to use
    the cluster: it binds to loopback (executors connect back to it), and its executors run this interpreter (the
    virtualenv with billing_pipeline installed, and this PYTHONPATH) for any Python work."""
    return {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}


class StandaloneCluster:
    def __init__(self, folder: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
                 daemon_memory: str = "256m", startup_seconds: float = 120):
        self.folder = Path(folder)
        self.workers, self.cores, self.memory = workers, cores, memory
        self.startup_seconds = startup_seconds
        self.folder.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "conf"  # an empty configuration folder: no spark-defaults.conf of the machine's
        conf.mkdir(exist_ok=True)
        self.env = {**os.environ, **driver_environment(), "SPARK_HOME": str(SPARK_HOME), "SPARK_CONF_DIR": str(conf),
                    "SPARK_DAEMON_MEMORY": daemon_memory, "SPARK_NO_DAEMONIZE": "1"}
        self.port, self.ui_port = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.master_ui = f"http://127.0.0.1:{self.ui_port}"
        self.processes: dict[str, subprocess.Popen] = {}

    # -- the daemons ---------------------------------------------------------------------------------------------
    def _start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process in stop()
        process = subprocess.Popen(args, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.folder)
        process.log = log
        self.processes[name] = process
        return process

    def start(self) -> StandaloneCluster:
        # through bash: the scripts exec the JVM (same pid), and need no executable bit
        spark_class = str(SPARK_HOME / "bin" / "spark-class")
        self._start("master", ["bash", spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(self.port), "--webui-port", str(self.ui_port)])
        for i in range(1, self.workers + 1):
            work = self.folder / f"worker-{i}"
            work.mkdir(exist_ok=True)
            self._start(f"worker-{i}", ["bash", spark_class, "org.apache.spark.deploy.worker.Worker", self.master_url,
                                        "--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory,
                                        "--webui-port", str(free_port()), "--work-dir", str(work)])
        try:
            self._wait(lambda: len(self.alive_workers()) == self.workers, f"{self.workers} workers registered")
        except BaseException:
            self.stop()
            raise
        return self

    def state(self) -> dict:
        """The master's JSON status page (workers, their cores in use, applications)."""
        with urllib.request.urlopen(self.master_ui + "/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> list[dict]:
        try:
            return [w for w in self.state()["workers"] if w["state"] == "ALIVE"]
        except OSError:
            return []

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            dead = [name for name, p in self.processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"Spark {', '.join(dead)} exited before {what}: {self._log_tails(dead)}")
            if ready():
                return
            time.sleep(0.5)
        raise TimeoutError(f"no {what} after {self.startup_seconds:.0f} s: {self._log_tails(list(self.processes))}")

    def _log_tails(self, names: list[str]) -> str:
        tails = []
        for name in names:
            path = self.folder / f"{name}.log"
            text = path.read_text(errors="replace")[-1500:] if path.exists() else "(no log)"
            tails.append(f"\n--- {path} ---\n{text}")
        return "".join(tails)

    def pids(self) -> dict[str, int]:
        """Each daemon's process id (a worker's process tree includes the executor JVM it launched)."""
        return {name: p.pid for name, p in self.processes.items() if p.poll() is None}

    # -- Spark Connect ------------------------------------------------------------------------------------------
    @contextmanager
    def connect_server(self, settings: dict[str, str] | None = None, driver_memory: str = "1g"):
        """A Spark Connect server (the connect jar pyspark ships) as this cluster's driver, on a free loopback port;
        yields its sc:// URL. It holds the workers' cores while it runs: stop other drivers first."""
        port = free_port()
        conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port),
                "spark.ui.enabled": "false", **(settings or {})}
        args = ["bash", str(SPARK_HOME / "bin" / "spark-submit"), "--master", self.master_url, "--class", CONNECT_SERVER,
                "--name", "billing_pipeline Spark Connect server"]
        for key, value in conf.items():
            args += ["--conf", f"{key}={value}"]
        # the launcher sizes this driver by SPARK_DAEMON_MEMORY, as the Thrift server's: a driver needs more
        env = {k: v for k, v in self.env.items() if k != "SPARK_DAEMON_MEMORY"}
        self._start("connect", args + ["--driver-memory", driver_memory], env={**env, "SPARK_CONNECT_MODE": "0"})
        try:
            self._wait(lambda: _accepts(port), f"Spark Connect server listening on 127.0.0.1:{port}")
            yield f"sc://127.0.0.1:{port}"
        finally:
            self._stop("connect")

    # -- stopping -----------------------------------------------------------------------------------------------
    def _stop(self, name: str, grace: float = 20) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        if process.poll() is None:
            try:  # the group this process leads (start_new_session): the daemon and what it spawned
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        process.log.close()

    def stop(self) -> None:
        for name in ["connect"] + [n for n in self.processes if n.startswith("worker")] + ["master"]:
            self._stop(name)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0
