"""The workflow passes Snakemake's own linter and dry-runs from the shipped config."""

from __future__ import annotations

from conftest import run_snakemake


def test_snakemake_lint_is_clean(workflow_dir):
    result = run_snakemake(workflow_dir, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_default_target_dry_runs(workflow_dir):
    result = run_snakemake(workflow_dir, "-n")
    assert "synthesize_demo_corpus" in result.stdout
