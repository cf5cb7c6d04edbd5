"""Scheduling resources and profiles that need no cluster: the local GPU cap of profiles/default,
gpu_rule_resources (rules/common.smk), and the retry scaling of profiles/slurm."""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import run_snakemake
from snakemake_runner import dry_run

# Two GPU-tagged rules that record when they run, and a CPU rule.
GPU_PAIR_SNAKEFILE = """
rule all:
    input:
        "gpu_a.txt",
        "gpu_b.txt",


rule gpu_a:
    output:
        "gpu_a.txt",
    threads: 1
    resources:
        gpu=1,
    shell:
        "date +%s.%N > {output}; sleep 3; date +%s.%N >> {output}"


rule gpu_b:
    output:
        "gpu_b.txt",
    threads: 1
    resources:
        gpu=1,
    shell:
        "date +%s.%N > {output}; sleep 3; date +%s.%N >> {output}"
"""


def _interval(path: Path) -> tuple[float, float]:
    start, end = (float(line) for line in path.read_text().split())
    return start, end


def _overlap(directory: Path) -> bool:
    (a_start, a_end), (b_start, b_end) = _interval(directory / "gpu_a.txt"), _interval(directory / "gpu_b.txt")
    return a_start < b_end and b_start < a_end


def test_default_profile_keeps_two_gpu_jobs_off_one_gpu(workflow_dir):
    """profiles/default (picked up automatically) caps gpu at 1: with 2 cores the jobs still run one at a time."""
    assert yaml.safe_load((workflow_dir / "profiles/default/config.yaml").read_text())["resources"] == ["gpu=1"]
    (workflow_dir / "Snakefile").write_text(GPU_PAIR_SNAKEFILE)
    result = run_snakemake(workflow_dir)
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr
    assert not _overlap(workflow_dir)
    # Control: the same jobs with room for two GPUs do run side by side on 2 cores, so the check
    # above can see an overlap.
    run_snakemake(workflow_dir, "--forceall", "--resources", "gpu=2")
    assert _overlap(workflow_dir)


GPU_RESOURCES_SNAKEFILE = """
include: "Snakefile"


rule placed:
    output:
        "placed.txt",
    threads: 2
    resources:
        **gpu_rule_resources("placed"),
    shell:
        "touch {output}"


rule cpu_only:
    output:
        "cpu_only.txt",
    threads: 1
    resources:
        **gpu_rule_resources("cpu_only"),
    shell:
        "touch {output}"


rule defaults:
    output:
        "defaults.txt",
    threads: 1
    resources:
        **gpu_rule_resources("defaults"),
    shell:
        "touch {output}"


rule per_backend:
    output:
        "per_backend_{backend}.txt",
    threads: 1
    resources:
        **gpu_rule_resources("per_backend", gpu=lambda wildcards: 0 if wildcards.backend == "handcrafted" else 1),
    shell:
        "touch {output}"
"""


def _dry_run_jobs(directory: Path, *args: str, snakefile: str = "Snakefile.res") -> list[tuple[str, str, dict]]:
    """(rule, output, resources) of each job, as a dry run prints them."""
    plan = dry_run(directory, "--snakefile", snakefile, *args)
    return [(job.rule, ", ".join(job.output), job.resources) for job in plan.jobs]


def _dry_run_resources(directory: Path, *args: str, snakefile: str = "Snakefile.res") -> dict[str, dict[str, str]]:
    """Resources of each rule, as a dry run prints them."""
    return {rule: resources for rule, _, resources in _dry_run_jobs(directory, *args, snakefile=snakefile)}


def test_gpu_rule_resources_come_from_the_config_block(workflow_dir):
    (workflow_dir / "Snakefile.res").write_text(GPU_RESOURCES_SNAKEFILE)
    (workflow_dir / "res.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": {
                    "placed": {
                        "gpu": 2,
                        "gpu_model": "a100",
                        "cpus_per_gpu": 4,
                        "mem_mb": 1234,
                        "runtime": 7,
                        "slurm_partition": "gpu",
                    },
                    # A CPU-only machine: no GPU, so no GPU model or CPUs per GPU, but its partition stays.
                    "cpu_only": {"gpu": 0, "gpu_model": "a100", "cpus_per_gpu": 4, "slurm_partition": "cpu"},
                }
            }
        )
    )
    # --resources: locally, profiles/default's cap would scale the 2 GPUs down to 1.
    resources = _dry_run_resources(
        workflow_dir, "placed.txt", "cpu_only.txt", "defaults.txt", "--resources", "gpu=2", "--configfile", "res.yaml"
    )
    placed = resources["placed"]
    assert (placed["gpu"], placed["gpu_model"], placed["cpus_per_gpu"]) == ("2", "a100", "4")
    assert (placed["mem_mb"], placed["runtime"], placed["slurm_partition"]) == ("1234", "7", "gpu")
    cpu_only = resources["cpu_only"]
    assert cpu_only["gpu"] == "0" and cpu_only["slurm_partition"] == "cpu"
    assert "gpu_model" not in cpu_only and "cpus_per_gpu" not in cpu_only
    defaults = resources["defaults"]  # GPU_RULE_DEFAULTS of rules/common.smk
    assert (defaults["gpu"], defaults["mem_mb"], defaults["runtime"]) == ("1", "8000", "120")
    assert not {"gpu_model", "cpus_per_gpu", "slurm_partition"} & set(defaults)


def test_gpu_rule_resources_follow_a_per_job_gpu_count(workflow_dir):
    """With `gpu=` a function of the wildcards, a job that needs no GPU gets no GPU placement."""
    (workflow_dir / "Snakefile.res").write_text(GPU_RESOURCES_SNAKEFILE)
    (workflow_dir / "res.yaml").write_text(
        yaml.safe_dump(
            {"resources": {"per_backend": {"gpu_model": "a100", "cpus_per_gpu": 4, "slurm_partition": "gpu"}}}
        )
    )
    jobs = {
        output: resources
        for rule, output, resources in _dry_run_jobs(
            workflow_dir, "per_backend_handcrafted.txt", "per_backend_wavlm.txt", "--configfile", "res.yaml"
        )
        if rule == "per_backend"
    }
    handcrafted, neural = jobs["per_backend_handcrafted.txt"], jobs["per_backend_wavlm.txt"]
    assert handcrafted["gpu"] == "0" and "gpu_model" not in handcrafted and "cpus_per_gpu" not in handcrafted
    assert (neural["gpu"], neural["gpu_model"], neural["cpus_per_gpu"]) == ("1", "a100", "4")
    assert handcrafted["slurm_partition"] == neural["slurm_partition"] == "gpu"


# Rules that fail on their first attempt and record the memory and time of every attempt.
FLAKY_SNAKEFILE = """
include: "Snakefile"


rule flaky_cpu:
    output:
        "flaky_cpu.txt",
    threads: 1
    shell:
        "echo {resources.mem_mb} {resources.runtime} >> attempts_cpu.txt; "
        "test $(wc -l < attempts_cpu.txt) -ge 2 && touch {output}"


rule flaky_gpu:
    output:
        "flaky_gpu.txt",
    threads: 1
    resources:
        **gpu_rule_resources("flaky_gpu"),
    shell:
        "echo {resources.mem_mb} {resources.runtime} >> attempts_gpu.txt; "
        "test $(wc -l < attempts_gpu.txt) -ge 2 && touch {output}"
"""


def test_slurm_profile_retries_ask_for_more_memory_and_time(workflow_dir):
    """The SLURM profile's retries and attempt-scaled resources, run by the local executor."""
    (workflow_dir / "Snakefile.flaky").write_text(FLAKY_SNAKEFILE)
    (workflow_dir / "flaky.yaml").write_text(
        yaml.safe_dump({"resources": {"flaky_gpu": {"mem_mb": 250, "runtime": 3}}})
    )
    profile = yaml.safe_load((workflow_dir / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm" and profile["retries"] >= 1
    run_snakemake(
        workflow_dir,
        "--snakefile",
        "Snakefile.flaky",
        "--configfile",
        "flaky.yaml",
        "--workflow-profile",
        "profiles/slurm",
        "--executor",
        "local",
        "flaky_cpu.txt",
        "flaky_gpu.txt",
    )
    defaults = profile["default-resources"]
    expected_cpu = [
        f"{eval(defaults['mem_mb'], {'attempt': a})} {eval(defaults['runtime'], {'attempt': a})}" for a in (1, 2)
    ]
    assert (workflow_dir / "attempts_cpu.txt").read_text().split("\n")[:2] == expected_cpu == ["2000 60", "4000 120"]
    assert (workflow_dir / "attempts_gpu.txt").read_text().split("\n")[:2] == ["250 3", "500 6"]


def test_every_gpu_rule_takes_its_placement_from_the_config_block(workflow_dir):
    """Each rule of the workflow that declares a GPU gets all keys of config `resources.<rule>`: its own
    block, never another rule's."""
    jobs = _dry_run_jobs(workflow_dir, "--forceall", snakefile="Snakefile")
    gpu_rules = sorted({rule for rule, _, resources in jobs if "gpu" in resources})
    # The rules of this DAG with a GPU placement block in config.yaml are exactly those that ask for a GPU.
    blocks = yaml.safe_load((workflow_dir / "config.yaml").read_text())["resources"]
    assert gpu_rules == sorted({rule for rule, _, _ in jobs if "gpu" in blocks.get(rule, {})}) != []
    # Each rule's own block: a runtime of its own shows which block a job read.
    placements = {
        rule: {
            "gpu": 1,
            "gpu_model": "probe_model",
            "cpus_per_gpu": 3,
            "slurm_partition": "probe_part",
            "mem_mb": 1111,
            "runtime": 11 + number,
        }
        for number, rule in enumerate(gpu_rules)
    }
    (workflow_dir / "placement.yaml").write_text(yaml.safe_dump({"resources": placements}))
    jobs = _dry_run_jobs(workflow_dir, "--forceall", "--configfile", "placement.yaml", snakefile="Snakefile")
    for rule, output, resources in jobs:
        if rule not in gpu_rules:
            continue
        placement = placements[rule]
        # A job whose rule decides it needs no GPU (e.g. a weights-free backend) gets no GPU placement.
        expected = (
            {key: str(value) for key, value in placement.items()}
            if resources["gpu"] != "0"
            else {
                "gpu": "0",
                "gpu_model": None,
                "cpus_per_gpu": None,
                "slurm_partition": "probe_part",
                "mem_mb": "1111",
                "runtime": str(placement["runtime"]),
            }
        )
        shown = {key: resources.get(key) for key in placement}
        assert shown == expected, (
            f"rule {rule} ({output}) does not read exactly config resources.{rule}; declare "
            f'`resources: **gpu_rule_resources("{rule}")`: {shown}'
        )
