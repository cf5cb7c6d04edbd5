"""The workflow passes Snakemake's own linter and dry-runs from the shipped config."""

from __future__ import annotations

from conftest import PROJECT_ROOT, run_snakemake


def test_snakemake_lint_is_clean(workflow_dir):
    result = run_snakemake(workflow_dir, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output, output


def test_default_target_dry_runs(workflow_dir):
    result = run_snakemake(workflow_dir, "-n")
    assert "synthesize_demo_corpus" in result.stdout


def test_rules_write_no_path_by_hand_and_have_no_twins():
    """Every result, log and benchmark path of the rules comes from workflow_scripts.common.paths, and
    each rule family is one rule: shared or per ASR system by its {scope} (no `use rule` twins)."""
    for path in sorted((PROJECT_ROOT / "rules").glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        for forbidden in ('"logs/', '"results/', "use rule", "_per_system", "hasattr(wildcards", "wildcards.get("):
            assert forbidden not in text, f"{path.name}: {forbidden!r}"
