"""The SLURM profile on a real single-node SLURM cluster (.ci/slurm/cluster.sh, fake GPU GRES).

One Snakemake run goes through `--workflow-profile profiles/slurm` in a copy of the workflow,
killed after RUN_TIMEOUT_S seconds, with `--keep-going` so that all of these are submitted at once:
- a CPU probe rule, a GPU-tagged probe rule (resources from the config block `resources`
  through gpu_rule_resources), a GPU-capable probe rule whose job needs no GPU, and the real
  workflow's WORKFLOW_TARGETS, all of which must succeed;
- two rules that always fail (one CPU, one GPU-tagged), retried by the profile with more memory,
  which must make the run exit non-zero.
(One run instead of a good and a bad one: the plugin backs its status checks off by 10 s per
check until a job succeeds, so a run of failures alone takes minutes longer.)
The jobs' requests are read back from the controller (`scontrol show job`; MinJobAge keeps
finished jobs there for 10 minutes). Everything the cluster script started is stopped by PID
in the fixture's teardown, also when a test fails.

Needs root and apt-get (or the packages installed); set DFAT_SKIP_SLURM=1 to skip.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from workflow_scripts.common.manifest import read_manifest

from conftest import PROJECT_ROOT
from snakemake_runner import parse_plan, run_snakemake
from workflow_copy import copy_workflow

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CLUSTER_SCRIPT = PROJECT_ROOT / ".ci" / "slurm" / "cluster.sh"
STATE_DIR = Path(os.environ.get("DFAT_SLURM_STATE", "/run/dfat-slurm"))
SLURM_PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
PROFILE = PROJECT_ROOT / "profiles" / "slurm" / "config.yaml"
# Targets of the real workflow run through SLURM beside the probes. When the GPU-capable stages
# are merged, replace this with the output of one GPU-capable rule (e.g. the TEFE model of one
# architecture): every job is checked against its own rule's `gpu` resource, so that rule is then
# asserted to be submitted with a GPU request and its CPU upstream rules without.
WORKFLOW_TARGETS = ["results/tefe/models/LSTM/model.pt"]
# A sharded target (PROBE_CONFIG scale.shards): the oracle system's WER on the dev split, from two
# transcription shard jobs; their gather and the scoring run as one group job of the profile's group
# `short` (SHORT_GROUP).
SHARDS = 2
SHARDED_TARGETS = ["results/systems/oracle/asr/wer_dev.json"]
GATHERED = "results/systems/oracle/transcripts/dev.parquet"
SHORT_GROUP = "short"
RUN_TIMEOUT_S = 600
LOCK_TIMEOUT_S = 900

# Probe rules, in a Snakefile that includes the real one (its config, validation and helpers).
PROBE_SNAKEFILE = """
include: "Snakefile"


rule cpu_probe:
    output:
        "results/probe/cpu_probe.env",
    log:
        "logs/probe/cpu_probe.log",
    threads: 1
    conda:
        "envs/cpu.yaml"
    shell:
        "(echo SLURM_JOB_ID=${{SLURM_JOB_ID:-}}; echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}})"
        " > {output} 2> {log}"


rule gpu_probe:
    output:
        "results/probe/gpu_probe.env",
    log:
        "logs/probe/gpu_probe.log",
    threads: 1
    resources:
        **gpu_rule_resources("gpu_probe"),
    conda:
        "envs/gpu.yaml"
    shell:
        "(echo SLURM_JOB_ID=${{SLURM_JOB_ID:-}}; echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}})"
        " > {output} 2> {log}"


# A GPU-capable rule whose job decides it needs no GPU (like a weights-free backend).
rule no_gpu_probe:
    output:
        "results/probe/no_gpu_probe.env",
    log:
        "logs/probe/no_gpu_probe.log",
    threads: 1
    resources:
        **gpu_rule_resources("no_gpu_probe", gpu=lambda wildcards: 0),
    conda:
        "envs/gpu.yaml"
    shell:
        "(echo SLURM_JOB_ID=${{SLURM_JOB_ID:-}}; echo CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES:-}})"
        " > {output} 2> {log}"


rule fail_cpu_probe:
    output:
        "results/probe/fail_cpu_probe.txt",
    log:
        "logs/probe/fail_cpu_probe.log",
    threads: 1
    conda:
        "envs/cpu.yaml"
    shell:
        "echo partial > {output}; echo 'deliberate failure' > {log}; exit 3"


rule fail_gpu_probe:
    output:
        "results/probe/fail_gpu_probe.txt",
    log:
        "logs/probe/fail_gpu_probe.log",
    threads: 1
    resources:
        **gpu_rule_resources("fail_gpu_probe"),
    conda:
        "envs/gpu.yaml"
    shell:
        "echo partial > {output}; echo 'deliberate failure' > {log}; exit 3"
"""
# Config overlay: the probes' resources, as a user writes them in config.yaml.
PROBE_CONFIG = {
    "resources": {
        "gpu_probe": {"gpu": 1, "gpu_model": "fake", "cpus_per_gpu": 1, "mem_mb": 300, "runtime": 5},
        "no_gpu_probe": {"gpu_model": "fake", "cpus_per_gpu": 1, "mem_mb": 200, "runtime": 3},
        "fail_gpu_probe": {"gpu": 1, "mem_mb": 250, "runtime": 4},
        "train_tefe": {"gpu": 1, "mem_mb": 2000, "runtime": 10},
    },
    # A small text encoder, so that the real GPU-capable rule trains in seconds.
    "tefe": {
        "embedding": {"dim": 32, "word2vec": {"epochs": 1}},
        "models": {"LSTM": {"units": 16}},
        "training": {"epochs": 1},
    },
    "scale": {"shards": SHARDS},
}


def _skip_reason() -> str | None:
    if os.environ.get("DFAT_SKIP_SLURM") == "1":
        return "DFAT_SKIP_SLURM=1"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "the SLURM cluster test starts system daemons and needs root (CI runs as root)"
    installed = (
        all(
            subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout
            == "install ok installed"
            for p in SLURM_PACKAGES
        )
        if shutil.which("dpkg-query")
        else False
    )
    if not installed and not shutil.which("apt-get"):
        return f"apt-get is not available to install {' '.join(SLURM_PACKAGES)}"
    return None


def _recorded_pids() -> dict[str, int]:
    pid_dir = STATE_DIR / "pids"
    return {p.name: int(p.read_text()) for p in pid_dir.iterdir()} if pid_dir.is_dir() else {}


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start the cluster (one test session at a time on a machine); stop what it started."""
    reason = _skip_reason()
    if reason:
        pytest.skip(f"SLURM cluster test skipped: {reason}")
    STATE_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{STATE_DIR}.lock", "w") as lock:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:  # another session on this machine may be using the (machine-wide) cluster
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another session held {STATE_DIR}.lock for {LOCK_TIMEOUT_S} s")
                time.sleep(1)
        was_running = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True).returncode == 0
        started = time.monotonic()
        try:
            start = subprocess.run(
                ["timeout", "-s", "KILL", "600", str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True
            )
            assert start.returncode == 0, f"cluster start failed:\n{start.stdout}\n{start.stderr}"
            print(f"cluster up in {time.monotonic() - started:.1f} s")
            yield _recorded_pids()
        finally:
            if not was_running:
                pids = _recorded_pids()
                stop = subprocess.run(
                    ["timeout", "-s", "KILL", "120", str(CLUSTER_SCRIPT), "stop"], capture_output=True, text=True
                )
                left = {name: pid for name, pid in pids.items() if _running(pid)}
                assert stop.returncode == 0 and not left, f"daemons left running {left}:\n{stop.stderr}"


def _workflow_copy(directory: Path) -> Path:
    copy_workflow(directory)
    (directory / "Snakefile.probe").write_text(PROBE_SNAKEFILE, encoding="utf-8")
    (directory / "probe_config.yaml").write_text(yaml.safe_dump(PROBE_CONFIG), encoding="utf-8")
    return directory


def _term_with_parent() -> None:
    """In the child (Snakemake): SIGINT when pytest dies; like Ctrl-C, Snakemake then cancels its
    SLURM jobs (a killed pytest would otherwise leave it running)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG


def _snakemake(directory: Path, *args: str, timeout: int = RUN_TIMEOUT_S) -> tuple[int, str]:
    """Snakemake with the SLURM profile, killed (SIGKILL) after ``timeout`` seconds."""
    result = run_snakemake(
        directory,
        "--snakefile",
        "Snakefile.probe",
        "--configfile",
        "probe_config.yaml",
        "--workflow-profile",
        "profiles/slurm",
        # No accounting on the CI cluster: status from squeue (MinJobAge=600 s keeps
        # finished jobs visible); a quick first status check for short test jobs; a
        # local file system needs no 60 s wait for outputs (Snakemake also waits after
        # a failed job).
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--latency-wait",
        "5",
        *args,
        check=False,
        timeout=timeout,
        cores=None,
        env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        merge_output=True,
        preexec_fn=_term_with_parent,
    )
    with open(directory / "snakemake.out", "a", encoding="utf-8") as handle:  # for a failed CI run
        handle.write(result.stdout)
    return result.returncode, result.stdout


def _outer_log(log: str) -> str:
    """Snakemake's log without the logs of failed jobs that it prints (show-failed-logs), which
    hold the output of the Snakemake run inside each job."""
    return re.sub(r"^Logfile [^\n]*:\n(=+)\n.*?^\1$", "", log, flags=re.M | re.S)


def _gpus_by_slurm_job(log: str) -> dict[str, int]:
    """GPUs that Snakemake's own job resources asked for, by SLURM job id (from the run's log)."""
    gpus = {
        job.jobid: int(job.resources.get("gpu", "0")) for job in parse_plan(log).jobs if job.jobid and job.resources
    }
    submitted = re.findall(r"^Job (\S+) has been submitted with SLURM jobid (\d+)", log, re.M)
    # A group job (its id is not a number) holds CPU rules only (the profile's `groups`): no GPU.
    return {slurm_id: gpus[jobid] if jobid.isdigit() else 0 for jobid, slurm_id in submitted}


def _slurm_jobs(run_id: str) -> list[dict[str, str]]:
    """The controller's records of the jobs of one Snakemake run (job name = the run id)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    records = [dict(re.findall(r"(\w[\w/:]*)=(\S*)", line)) for line in out.splitlines() if line.strip()]
    return sorted((r for r in records if r.get("JobName") == run_id), key=lambda r: int(r["JobId"]))


GOOD_TARGETS = [
    "results/probe/cpu_probe.env",
    "results/probe/gpu_probe.env",
    "results/probe/no_gpu_probe.env",
    *WORKFLOW_TARGETS,
    *SHARDED_TARGETS,
]
FAIL_TARGETS = ["results/probe/fail_cpu_probe.txt", "results/probe/fail_gpu_probe.txt"]


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    """The run, its log, the rules' resources as Snakemake saw them and the SLURM job records."""
    directory = _workflow_copy(tmp_path_factory.mktemp("slurm") / "workflow")
    started = time.monotonic()
    returncode, log = _snakemake(directory, "--keep-going", *GOOD_TARGETS, *FAIL_TARGETS)
    print(f"SLURM run done in {time.monotonic() - started:.1f} s")
    run_id = re.search(r"^SLURM run ID: (\S+)$", log, re.M)
    assert run_id, f"no SLURM run id in the log:\n{log[-6000:]}"
    return {
        "returncode": returncode,
        "log": log,
        "dir": directory,
        "jobs": _slurm_jobs(run_id.group(1)),
        "gpus": _gpus_by_slurm_job(_outer_log(log)),
    }


def _rule(job: dict[str, str]) -> str:
    return re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", job["Comment"]).group(1)


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


PROBE_RULES = {"cpu_probe", "gpu_probe", "no_gpu_probe"}
FAIL_RULES = {"fail_cpu_probe", "fail_gpu_probe"}


def test_gpu_rules_request_a_gpu_and_cpu_rules_do_not(slurm_run):
    jobs = [job for job in slurm_run["jobs"] if _rule(job) not in FAIL_RULES]
    rules = {_rule(job) for job in jobs}
    assert PROBE_RULES <= rules and rules - PROBE_RULES, rules  # the probes and the real workflow's rules
    assert set(slurm_run["gpus"]) == {job["JobId"] for job in slurm_run["jobs"]}
    for job in slurm_run["jobs"]:  # each job against its own `gpu` resource in Snakemake
        if slurm_run["gpus"][job["JobId"]] > 0:
            assert "gres:gpu" in job["TresPerJob"], (_rule(job), job)
        else:  # CPU rules and GPU-capable jobs that need no GPU: no GPU, no CPUs per GPU
            assert "TresPerJob" not in job and "CpusPerTres" not in job, (_rule(job), job)
    assert sum(gpus > 0 for gpus in slurm_run["gpus"].values()) >= 2  # gpu_probe, fail_gpu_probe (x3)
    assert all(job["JobState"] == "COMPLETED" for job in jobs), [(_rule(j), j["JobState"]) for j in jobs]

    by_rule = {_rule(job): job for job in jobs}
    # Placement from the config block `resources.gpu_probe`: model, CPUs per GPU, memory, time.
    gpu = by_rule["gpu_probe"]
    assert gpu["TresPerJob"] == "gres:gpu:fake:1"
    assert gpu["CpusPerTres"] == "gres:gpu:1"
    assert gpu["MinMemoryNode"] == "300M" and gpu["TimeLimit"] == "00:05:00"
    # A CPU rule: the profile's default resources, its threads as CPUs.
    cpu = by_rule["cpu_probe"]
    assert cpu["NumCPUs"] == "1" and cpu["MinMemoryNode"] == "2000M" and cpu["TimeLimit"] == "01:00:00"
    # The GPU-capable rule whose job needs no GPU: its own memory and time, no GPU model.
    no_gpu = by_rule["no_gpu_probe"]
    assert no_gpu["MinMemoryNode"] == "200M" and no_gpu["TimeLimit"] == "00:03:00"
    # Inside the jobs: SLURM ran them, and only the GPU job sees a GPU.
    gpu_env = _env_file(slurm_run["dir"] / "results/probe/gpu_probe.env")
    cpu_env = _env_file(slurm_run["dir"] / "results/probe/cpu_probe.env")
    assert gpu_env == {"SLURM_JOB_ID": gpu["JobId"], "CUDA_VISIBLE_DEVICES": "0"}
    assert cpu_env == {"SLURM_JOB_ID": cpu["JobId"], "CUDA_VISIBLE_DEVICES": ""}
    no_gpu_env = _env_file(slurm_run["dir"] / "results/probe/no_gpu_probe.env")
    assert no_gpu_env == {"SLURM_JOB_ID": no_gpu["JobId"], "CUDA_VISIBLE_DEVICES": ""}


def test_real_workflow_targets_are_built_through_slurm(slurm_run):
    directory = slurm_run["dir"]
    for target in WORKFLOW_TARGETS + SHARDED_TARGETS:
        assert (directory / target).stat().st_size > 0, target
        if target.endswith(".json"):
            assert json.loads((directory / target).read_text()), target
    # Every job of the run was a SLURM job (none ran locally) ...
    real_rules = {_rule(job) for job in slurm_run["jobs"]} - PROBE_RULES - FAIL_RULES
    assert real_rules and "localrule" not in _outer_log(slurm_run["log"]), real_rules
    # ... and Snakemake considers every successful target complete and up to date.
    returncode, log = _snakemake(directory, "--dry-run", *GOOD_TARGETS, timeout=120)
    assert returncode == 0 and "Nothing to be done" in log, log[-4000:]


def test_failing_jobs_fail_the_workflow_after_retries_with_more_memory(slurm_run):
    assert slurm_run["returncode"] != 0
    failed_rules = set(re.findall(r"^Error in rule (\w+):", slurm_run["log"], re.M))
    assert failed_rules == FAIL_RULES, failed_rules
    profile = yaml.safe_load(PROFILE.read_text())
    attempts = profile["retries"] + 1
    default_mem = profile["default-resources"]["mem_mb"]
    expected_mem = {
        # CPU rule: the profile's default-resources expression of `attempt`.
        "fail_cpu_probe": [eval(default_mem, {"attempt": a}) for a in range(1, attempts + 1)],
        # GPU rule: config mem_mb times the attempt (gpu_rule_resources).
        "fail_gpu_probe": [PROBE_CONFIG["resources"]["fail_gpu_probe"]["mem_mb"] * a for a in range(1, attempts + 1)],
    }
    assert attempts >= 2
    for rule, mems in expected_mem.items():
        assert mems == sorted(set(mems)), mems  # each retry asks for more
        jobs = [job for job in slurm_run["jobs"] if _rule(job) == rule]
        assert [job["MinMemoryNode"] for job in jobs] == [f"{m}M" for m in mems], (rule, jobs)
        assert all(job["JobState"] == "FAILED" for job in jobs), [job["JobState"] for job in jobs]
        # A failed job leaves no output behind.
        assert not (slurm_run["dir"] / "results" / "probe" / f"{rule}.txt").exists()


def test_shard_jobs_are_slurm_jobs_and_short_jobs_run_as_a_group(slurm_run):
    """Each shard of a sharded step is its own SLURM job; the gather and the WER scoring, both in the
    profile's group `short`, go to SLURM as one group job; the gathered file covers the split."""
    jobs = [job for job in slurm_run["jobs"] if _rule(job) not in FAIL_RULES]
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        by_rule.setdefault(_rule(job), []).append(job)
    assert len(by_rule.get("transcribe", [])) == SHARDS, sorted(by_rule)
    # A group job is named after its group and its rules (e.g. short_gather_transcripts_score_asr).
    groups = [name for name in by_rule if name.startswith(f"{SHORT_GROUP}_")]
    assert len(groups) == 1 and "gather_transcripts" in groups[0] and "score_asr" in groups[0], sorted(by_rule)
    assert not {"gather_transcripts", "score_asr"} & set(by_rule), sorted(by_rule)
    assert [job["JobState"] for job in by_rule[groups[0]]] == ["COMPLETED"]
    directory = slurm_run["dir"]
    manifest = directory / "results/data/speech/demo/dev.tsv"
    gathered = pq.read_table(directory / GATHERED, columns=["utt_id"]).column("utt_id").to_pylist()
    assert gathered == read_manifest(manifest)["utt_id"].tolist()
