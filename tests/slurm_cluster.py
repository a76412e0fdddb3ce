"""A real one-node SLURM cluster on localhost for the integration tests: munged, slurmctld, slurmd.

Everything lives in one private folder (munge key and socket, slurm.conf, state, logs) and uses
free loopback ports, so a system installation or a second cluster is never touched. Daemons run
in the foreground as children of this process; `stop` cancels the jobs and ends exactly those
PIDs. Needs root (slurmd starts jobs as their user) and Debian's slurm/munge packages, which
`ensure_packages` installs with apt-get when missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "squeue", "scancel")
#: seconds a launch credential lives; SLURM also holds a requeued job this long before restarting it
#: (default 120 s, which would make the requeue test wait two minutes).
CRED_EXPIRE = 10


class SlurmUnavailable(RuntimeError):
    """This machine cannot run the local cluster; the message says why."""


def ensure_packages(timeout: float = 300) -> None:
    if os.geteuid() != 0:
        raise SlurmUnavailable("the local SLURM cluster needs root (slurmd runs jobs as their user)")
    if all(shutil.which(c) for c in COMMANDS):
        return
    if not shutil.which("apt-get"):
        raise SlurmUnavailable(f"{', '.join(PACKAGES)} are not installed and apt-get is not available")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable(f"{' '.join(cmd)} took more than {timeout:.0f} s") from None
        if done.returncode:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    missing = [c for c in COMMANDS if not shutil.which(c)]
    if missing:
        raise SlurmUnavailable(f"installed {', '.join(PACKAGES)} but {missing} are still missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, seconds: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    tails = "\n".join(f"--- {p}:\n{p.read_text()[-1500:]}" for p in logs if p.exists())
    raise RuntimeError(f"{what} within {seconds:.0f} s\n{tails}")


class LocalSlurm:
    """Start with `start()`, point clients at `env` (SLURM_CONF), end with `stop()`."""

    def __init__(self, root: Path, partition: str = "debug") -> None:
        self.root = Path(root)
        self.partition = partition
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        self.procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)
        log.close()

    def _ok(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=15)

    def start(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        self._start_munge()
        self._write_conf()
        self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
        _wait(lambda: "UP" in self._ok("scontrol", "ping").stdout, 30, "slurmctld did not answer",
              [self.root / "log" / "slurmctld.log", self.root / "log" / "slurmctld.out"])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        _wait(lambda: self._ok("sinfo", "-h", "-N", "-o", "%T").stdout.strip() == "idle", 60, "the node is not idle",
              [self.root / "log" / "slurmd.log", self.root / "log" / "slurmd.out"])

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            made = subprocess.run(["mungekey", "--create", f"--keyfile={key}", "--bits=1024"], capture_output=True)
            if made.returncode:
                key.write_bytes(os.urandom(128))
            key.chmod(0o400)
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={self.socket}",
                               f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}"])
        _wait(self.socket.exists, 15, "munged did not create its socket", [self.root / "log" / "munged.out"])

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        probe = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, env=self.env).stdout
        hw = dict(f.split("=", 1) for f in probe.split() if "=" in f)
        memory = max(int(hw.get("RealMemory", "2048")) - 512, 512)
        cpus = hw.get("CPUs", str(os.cpu_count() or 1))
        r = self.root
        self.conf.write_text(f"""\
ClusterName=sbcoretest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket},cred_expire={CRED_EXPIRE}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/state/slurmctld.pid
SlurmdPidFile={r}/spool/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
Waittime=0
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={self.partition} Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")

    def stop(self) -> None:
        """Cancel every job of this cluster, then end the daemons this object started, by PID."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            jobs = self._ok("squeue", "-h", "-o", "%A").stdout.split()
            if jobs:
                self._ok("scancel", *jobs)
                deadline = time.monotonic() + 15
                while self._ok("squeue", "-h", "-o", "%A").stdout.strip() and time.monotonic() < deadline:
                    time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def job_reason(self, job_id: str) -> tuple[str, str]:
        """(state, reason) of a queued job, ("", "") when squeue no longer lists it."""
        out = self._ok("squeue", "-h", "-j", job_id, "-o", "%T %r").stdout.split(maxsplit=1)
        return (out[0], out[1].strip()) if len(out) == 2 else ("", "")
