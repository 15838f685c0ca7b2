"""A real one-node Slurm cluster on this machine, for the cluster-path test.

Debian's slurm-wlm and munge are installed when missing (root only), a slurm.conf for
this one node is written to /etc/slurm (where srun inside a job looks for it), and
munged, slurmctld and slurmd are started by hand, since there is no systemd here. Only
the daemons started here are stopped afterwards, and the slurm.conf is removed again.

The node declares 16 CPUs, 64 GB and two A100s whatever the machine has
(``config_overrides``; the GPUs are device files standing in for them, see ``_fake_gpus``),
so the profile's CPU, memory and GPU requests schedule on a two-core runner without GPUs.
GPU jobs run there as on a GPU node, and their code finds no CUDA device. Without accounting
(no slurmdbd), job states come from squeue; ``MinJobAge`` keeps finished jobs listed long
enough for Snakemake to see them finish.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = CONF.with_name("gres.conf")
#: The fake GPUs of the one node, so GPU jobs are scheduled as on a GPU cluster.
GPU_MODEL, GPUS = "a100", 2
MARK = "# written by the motionedit cluster test"
PACKAGES = ["slurm-wlm", "slurm-client", "munge"]


def unavailable() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if os.geteuid() != 0:
        return "starting Slurm daemons needs root (CI runs as root)"
    for conf in (CONF, GRES_CONF):
        if conf.exists() and MARK not in conf.read_text():
            return f"{conf} belongs to a real Slurm installation; not touching it"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "Slurm is not installed and there is no apt-get to install Debian's slurm-wlm"
    return None


def _install() -> None:
    if shutil.which("slurmctld") and shutil.which("munged") and shutil.which("sbatch"):
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(cmd, env=env, capture_output=True, check=True)


def _conf(state: Path) -> str:
    host = socket.gethostname()
    return f"""{MARK}
ClusterName=motionedit-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName={host} CPUs=16 RealMemory=64000 Gres=gpu:{GPU_MODEL}:{GPUS} State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
"""


def _fake_gpus(state: Path) -> str:
    """Device files for the fake GPUs, as gres.conf's ``File=`` range. Slurm 22.05 drops
    a GPU configured by ``Count=`` alone ("Removing file-less GPU"), and wants character
    devices: these are copies of /dev/null, or plain files (Slurm logs an error for each
    and still counts them) where mknod is not allowed."""
    folder = state / "dev"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(GPUS):
        path = folder / f"fakegpu{i}"
        if not path.exists():
            try:
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            except PermissionError:
                path.touch()
    return f"{folder}/fakegpu[0-{GPUS - 1}]"


def _gres_conf(state: Path) -> str:
    host = socket.gethostname()
    return f"{MARK}\nNodeName={host} Name=gpu Type={GPU_MODEL} File={_fake_gpus(state)}\n"


class OneNodeSlurm:
    """``with OneNodeSlurm(state_dir): ...`` runs a cluster whose partitions are named as
    the profile's placeholders (``cpu``, ``gpu``)."""

    def __init__(self, state: Path):
        self.state = state
        self.started: list[int] = []  # pids of the daemons started here

    def __enter__(self) -> OneNodeSlurm:
        _install()
        for sub in ("ctld", "spool"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(_conf(self.state))
        GRES_CONF.write_text(_gres_conf(self.state))
        try:
            self._start()
            self._wait_idle()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            key = Path("/etc/munge/munge.key")
            if not key.exists():
                subprocess.run(["/usr/sbin/mungekey", "--create"], check=True)
                shutil.chown(key, "munge", "munge")
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True)
            self._remember("munged")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([f"/usr/sbin/{daemon}"], check=True)
            self._remember(daemon, self.state / f"{daemon}.pid")

    def _remember(self, name: str, pid_file: Path | None = None) -> None:
        """The daemon's pid, from its pid file when it writes one: the Slurm daemons fork
        after they start, so the newest process of that name can be the parent that is
        about to exit, and the daemon itself would outlive the test."""
        for _ in range(50):
            if pid_file is not None:
                text = pid_file.read_text().strip() if pid_file.is_file() else ""
            else:
                out = subprocess.run(["pgrep", "-nx", name], capture_output=True, text=True)
                text = out.stdout.strip()
            if text:
                self.started.append(int(text.split()[0]))
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start; see {self.state}")

    def _wait_idle(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
            if out.returncode == 0 and "idle" in out.stdout:
                return
            time.sleep(0.5)
        log = (self.state / "slurmctld.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the Slurm node did not become idle in {timeout} s:\n{log}")

    def __exit__(self, *exc) -> None:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        for pid in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in self.started:
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        for conf in (CONF, GRES_CONF):
            if conf.exists() and MARK in conf.read_text():
                conf.unlink()
