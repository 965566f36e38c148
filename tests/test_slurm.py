"""The workflow on a real (one-node, localhost) SLURM cluster through snakemake-executor-plugin-slurm.

The module fixture installs Debian's ``slurm-wlm`` and ``munge`` when they are missing, writes
/etc/slurm/slurm.conf (the plugin's ``srun`` step inside each job only reads that path; an existing
file is backed up and restored), starts ``munged``, ``slurmctld`` and ``slurmd`` and stops them again
by pid. Accounting is off, hence ``--slurm-no-account --slurm-status-command squeue`` (the README's
"Running on a cluster" command). It needs root and apt; otherwise the tests skip saying so.

A run that is killed half-way leaves its daemons behind: their pids are kept under ``STATE`` (a fixed
path, not a pytest tmp dir) and the next run stops them first.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from debian import apt_install
from media import DEMO_VIDEO, write_video

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
# What the README tells users of a cluster without accounting to add to the profile.
NO_ACCOUNTING_FLAGS = ("--slurm-no-account", "--slurm-status-command", "squeue")
# The test's jobs take seconds: ask squeue 2 s after each finish instead of the profile's 10 (a real cluster
# should not be polled that often; the plugin adds 10 s per check while nothing finishes).
FAST_POLLING_FLAGS = ("--slurm-init-seconds-before-status-checks", "2")

STATE = Path("/tmp/hfagp-slurm-test")  # fixed, so that the next run finds what a killed run left
SLURM_CONF = Path("/etc/slurm/slurm.conf")
BACKUP = STATE / "slurm.conf.orig"
MARK = "# written by hfagp tests/test_slurm.py; the original (if any) is in " + str(BACKUP)
# What the fixture starts, in the order it stops them: a killed test run can leave its snakemake
# (own session, still submitting) as well as the daemons.
DAEMONS = {"snakemake": "snakemake", "slurmd": "slurmd", "slurmctld": "slurmctld", "munged": "munged"}
TOOLS = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel", "munged", "munge")

pytestmark = pytest.mark.slow


def _run(command: list[str], timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def _quiet(command: list[str], timeout: float = 15) -> subprocess.CompletedProcess | None:
    """Run a slurm/munge client command; None when it is missing, hangs or cannot run."""
    try:
        return _run(command, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _tools_missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _install() -> None:
    """apt-get install slurm-wlm munge, when a tool is missing."""
    if not _tools_missing():
        return
    failure = apt_install(["slurm-wlm", "munge"], timeout=600)
    if failure is not None or _tools_missing():
        pytest.skip(f"SLURM is not installed ({', '.join(_tools_missing())} missing): "
                    f"{failure or 'apt-get installed slurm-wlm and munge without them'}")


def _pid_file(name: str) -> Path:
    return STATE / "pids" / f"{name}.pid"


def _is_ours(pid: int, name: str) -> bool:
    """Whether pid is still a running `name` daemon, or our `python -m snakemake` for name "snakemake"
    (pids are reused after a process exits)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        return False
    if name == "snakemake":
        return argv[1:3] == ["-m", "snakemake"] and str(PROFILE) in argv
    return Path(argv[0]).name == name


def _stop(pid: int, name: str, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL after `timeout` s; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        if not _is_ours(pid, name):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:  # reap it when it is our child (harmless otherwise)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _is_ours(pid, name):
                return
            time.sleep(0.1)


def _cancel_all_jobs() -> None:
    """Cancel every job of the test cluster and wait (bounded) until none is left."""
    squeue = _quiet(["squeue", "-h", "-o", "%i %T"], timeout=10)
    if squeue is None or squeue.returncode != 0:
        return
    active = [line.split()[0] for line in squeue.stdout.splitlines() if line.split()[1:] and line.split()[1] in
              ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED")]
    if not active:
        return
    _quiet(["scancel", *active], timeout=15)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        squeue = _quiet(["squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i"], timeout=10)
        if squeue is None or squeue.returncode != 0 or not squeue.stdout.strip():
            return
        time.sleep(0.5)


def _stop_daemons() -> None:
    """Stop the processes recorded in STATE/pids (this run's or a killed earlier run's)."""
    pid_file = _pid_file("snakemake")
    if pid_file.exists():  # first, so that it submits nothing more
        _stop(int(pid_file.read_text().strip() or 0), "snakemake")
        pid_file.unlink()
    if any(_pid_file(name).exists() for name in DAEMONS) and SLURM_CONF.exists() and MARK in SLURM_CONF.read_text():
        _cancel_all_jobs()
    for name in DAEMONS:
        pid_file = _pid_file(name)
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
            except ValueError:
                pid = None
            if pid is not None:
                _stop(pid, DAEMONS[name])
            pid_file.unlink()


def _restore_slurm_conf() -> None:
    if SLURM_CONF.exists() and MARK not in SLURM_CONF.read_text():
        return  # not ours (someone replaced it): leave it alone
    if BACKUP.exists():
        shutil.move(BACKUP, SLURM_CONF)
    elif SLURM_CONF.exists():
        SLURM_CONF.unlink()


def _write_slurm_conf(run_dir: Path) -> None:
    SLURM_CONF.parent.mkdir(parents=True, exist_ok=True)
    if SLURM_CONF.exists() and MARK not in SLURM_CONF.read_text() and not BACKUP.exists():
        shutil.copy2(SLURM_CONF, BACKUP)
    mem_total_mb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024
    real_memory = min(20000, int(mem_total_mb * 0.8))  # slurmd drains a node that has less than it claims
    cpus = os.cpu_count() or 1
    SLURM_CONF.write_text(
        f"""{MARK}
ClusterName=hfagptest
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation={run_dir}/state
SlurmdSpoolDir={run_dir}/spool
SlurmctldPidFile={run_dir}/slurmctld.pid
SlurmdPidFile={run_dir}/slurmd.pid
SlurmctldLogFile={run_dir}/slurmctld.log
SlurmdLogFile={run_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={real_memory} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
    )


def _munge_works() -> bool:
    cred = _quiet(["munge", "-n"], timeout=10)
    if cred is None or cred.returncode != 0:
        return False
    try:
        check = _run(["unmunge"], timeout=10, input=cred.stdout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return check.returncode == 0


@dataclass
class Cluster:
    run_dir: Path  # slurmctld.log, slurmd.log, state/, spool/
    daemons: dict[str, subprocess.Popen] = field(default_factory=dict)  # the ones this fixture started

    def dead(self) -> list[str]:
        return [name for name, proc in self.daemons.items() if proc.poll() is not None]


def _start(cluster: Cluster, name: str, command: list[str], **kwargs) -> None:
    with open(cluster.run_dir / f"{name}.out", "ab") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    _pid_file(name).write_text(str(proc.pid))
    cluster.daemons[name] = proc


def _wait_for(what: str, check, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-1500:]}" for log in logs if log.exists())
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}\n{tails}")


def _node_state() -> str:
    result = _quiet(["sinfo", "-h", "-N", "-o", "%t"], timeout=10)
    return result.stdout.strip() if result is not None and result.returncode == 0 else ""


@pytest.fixture(scope="module")
def slurm_cluster():
    """A one-node SLURM cluster on localhost."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test needs root (it installs slurm-wlm/munge and writes /etc/slurm/slurm.conf)")
    if shutil.which("apt-get") is None and _tools_missing():
        pytest.skip("the SLURM test needs apt-get to install slurm-wlm and munge (Debian/Ubuntu)")
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "pids").mkdir(exist_ok=True)
    _stop_daemons()  # left over by a run that was killed
    _install()
    run_dir = STATE / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    for sub in ("state", "spool"):
        (run_dir / sub).mkdir(parents=True)
    cluster = Cluster(run_dir)
    try:
        if not _munge_works():
            if not Path("/etc/munge/munge.key").exists():
                _run(["mungekey", "--create"] if shutil.which("mungekey") else ["create-munge-key"], timeout=30)
                shutil.chown("/etc/munge/munge.key", "munge", "munge")
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            # -F: stay in the foreground, so the pid we record is munged's own.
            _start(cluster, "munged", [shutil.which("munged"), "-F"], user="munge", group="munge")
            _wait_for("munged", _munge_works, 20, [run_dir / "munged.out", Path("/var/log/munge/munged.log")])
        _write_slurm_conf(run_dir)
        logs = [run_dir / name for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out")]
        _start(cluster, "slurmctld", [shutil.which("slurmctld"), "-D", "-c"])
        _start(cluster, "slurmd", [shutil.which("slurmd"), "-D", "-N", "localhost"])
        _wait_for("the node to be idle in sinfo", lambda: _node_state() == "idle", 60, logs)
        yield cluster
    finally:
        _stop_daemons()
        for proc in cluster.daemons.values():
            proc.poll()  # already reaped by _stop_daemons; keeps Popen from warning
        _restore_slurm_conf()


def run_on_slurm(cluster: Cluster, workdir: Path, config: dict, timeout: float = 300) -> tuple[int, str]:
    """The README command, `snakemake --profile workflow/profiles/slurm ... preprocess`, in workdir.

    Stopped (and the test failed) after `timeout` s or as soon as a daemon of the cluster dies, since
    snakemake would then wait for its jobs' status until the timeout."""
    if cluster.dead():
        pytest.fail(f"SLURM daemons died before the run: {cluster.dead()}")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    # Jobs inherit this environment (sbatch --export=ALL): the venv's bin/ holds `hfagp`.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--profile", str(PROFILE), *NO_ACCOUNTING_FLAGS,
               *FAST_POLLING_FLAGS, "preprocess"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=workdir, start_new_session=True)
    _pid_file("snakemake").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                output, _ = proc.communicate(timeout=2)  # retrying loses no output
                break
            except subprocess.TimeoutExpired:
                if cluster.dead() or time.monotonic() > deadline:
                    why = f"SLURM daemons died: {cluster.dead()}" if cluster.dead() else f"no end after {timeout} s"
                    os.killpg(proc.pid, signal.SIGKILL)
                    output, _ = proc.communicate()
                    _cancel_all_jobs()
                    pytest.fail(f"snakemake on SLURM stopped, {why}:\n{output[-4000:]}")
    finally:
        _pid_file("snakemake").unlink(missing_ok=True)
    (workdir / "snakemake.out").write_text(output)
    return proc.returncode, output


def submitted_jobs(output: str) -> dict[tuple[str, str], str]:
    """(rule, subject) -> SLURM job id, from snakemake's lines
    'Job N has been submitted with SLURM jobid M (log: .../slurm_logs/rule_<rule>/<subject>/M.log)'."""
    found = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: .*/slurm_logs/rule_(\w+)/(\w+)/\1\.log\)", output)
    return {(rule, subject): jobid for jobid, rule, subject in found}


def slurm_job(jobid: str) -> dict[str, str]:
    """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge seconds)."""
    result = _run(["scontrol", "show", "job", "-o", jobid], timeout=15)
    assert result.returncode == 0, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split() if "=" in item)


@dataclass
class SlurmRun:
    workdir: Path
    status: int
    output: str  # snakemake's
    jobs: dict[tuple[str, str], str]  # (rule, subject or chunk) -> SLURM job id


@pytest.fixture(scope="module")
def preprocess_run(slurm_cluster, tmp_path_factory) -> SlurmRun:
    """One `preprocess` run on the cluster for both tests below (each run costs about a minute of jobs):
    subject s1 in chunks of 10 frames (face detection and cropping become two SLURM jobs each), and a
    subject whose video has no face, whose landmarks job fails."""
    workdir = tmp_path_factory.mktemp("slurm")
    rng = np.random.default_rng(0)
    video = write_video(workdir / "noface.mp4", [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(6)])
    config = {"subjects": {"s1": {"video": DEMO_VIDEO, "max_frames": 20}, "noface": {"video": str(video)}},
              "preprocess": {"chunk_frames": 10}}
    status, output = run_on_slurm(slurm_cluster, workdir, config)
    return SlurmRun(workdir, status, output, submitted_jobs(output))


def test_preprocess_runs_as_slurm_jobs(preprocess_run, slurm_cluster):
    out = preprocess_run.workdir / "results" / "s1"
    output = preprocess_run.output
    assert len(pd.read_parquet(out / "frames.parquet")) == 20
    assert len(list((out / "crops").glob("*.png"))) >= 18
    for name in ("landmarks.parquet", "cameras.parquet", "dataset.json", "qc/landmarks.png"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "chunks").exists() or not any((out / "chunks").iterdir()), "chunk files are temporary"
    # Every rule (every chunk) ran as its own SLURM job, which slurmctld allocated and saw complete.
    submitted = {key: jobid for key, jobid in preprocess_run.jobs.items() if key[1].startswith("s1")}
    assert sorted(submitted) == [("align", "s1"), ("align_crops", "s1_0"), ("align_crops", "s1_1"),
                                 ("detect_faces", "s1_0"), ("detect_faces", "s1_1"), ("frames", "s1"),
                                 ("landmarks", "s1"), ("qc_landmarks", "s1")], output[-4000:]
    controller_log = (slurm_cluster.run_dir / "slurmctld.log").read_text()
    for key, jobid in submitted.items():
        info = slurm_job(jobid)
        assert info["JobState"] == "COMPLETED", (key, info)
        assert f"JobId={jobid}" in controller_log
    # The rules' threads and resources reached sbatch (--cpus-per-task, --mem, --time).
    assert slurm_job(submitted[("align_crops", "s1_1")])["NumCPUs"] == "2"
    assert slurm_job(submitted[("landmarks", "s1")])["MinMemoryNode"] == "3000M"
    assert slurm_job(submitted[("frames", "s1")])["TimeLimit"] == "00:30:00"


def test_subjects_run_in_parallel_and_a_failed_job_keeps_finished_outputs(preprocess_run):
    output, slurm_ids = preprocess_run.output, preprocess_run.jobs
    # `hfagp landmarks` exits non-zero on the video without a face: snakemake reports the SLURM job
    # as failed, shows its log, goes on with the other subject (keep-going) and exits non-zero.
    assert preprocess_run.status != 0
    assert sorted(key for key in slurm_ids if key[1] == "noface") == [("frames", "noface"), ("landmarks", "noface")]
    failed = slurm_ids[("landmarks", "noface")]
    for key, jobid in slurm_ids.items():
        assert slurm_job(jobid)["JobState"] == ("FAILED" if jobid == failed else "COMPLETED"), key
    assert f"SLURM-job '{failed}' failed" in output
    assert "no face found in any of the 6 frames" in output  # the failed job's log is shown
    # The two subjects' first jobs ran side by side on the node.
    first = [slurm_job(slurm_ids[("frames", subject)]) for subject in ("s1", "noface")]
    assert first[0]["StartTime"] <= first[1]["EndTime"] and first[1]["StartTime"] <= first[0]["EndTime"], first
    # Everything that finished is kept: all of s1, and the frames of the failed subject.
    out = preprocess_run.workdir / "results"
    assert (out / "s1" / "qc" / "landmarks.png").exists() and (out / "s1" / "dataset.json").exists()
    assert (out / "noface" / "frames" / "source.json").exists()
    assert (out / "noface" / "frames.parquet").exists()
    assert not (out / "noface" / "landmarks.parquet").exists()
