"""The report rules (table2, table3, figure2, plot_confusion_matrices) each run their own entry
module over the shared fusion/report.py, so editing one rule's module reruns that rule alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_scripts.common.code_inputs import code_inputs

ROOT = Path(__file__).resolve().parents[1]
# rule -> its entry module (rules/fusion.smk script_path)
ENTRY_MODULES = {
    "table2": "workflow_scripts/fusion/table2.py",
    "table3": "workflow_scripts/fusion/table3.py",
    "figure2": "workflow_scripts/fusion/figure2.py",
    "plot_confusion_matrices": "workflow_scripts/fusion/confusion_matrices.py",
}


@pytest.mark.parametrize("rule", sorted(ENTRY_MODULES))
def test_each_report_rule_reads_its_module_and_the_shared_one_only(rule):
    inputs = set(code_inputs(ENTRY_MODULES[rule], ROOT))
    assert {ENTRY_MODULES[rule], "workflow_scripts/fusion/report.py"} <= inputs
    assert not inputs & (set(ENTRY_MODULES.values()) - {ENTRY_MODULES[rule]})
    rules_file = (ROOT / "rules" / "fusion.smk").read_text(encoding="utf-8")
    block = rules_file[rules_file.index(f"rule {rule}:") :].split("\nrule ", 1)[0]
    step = Path(ENTRY_MODULES[rule]).relative_to("workflow_scripts").with_suffix("").as_posix()
    assert block.count(f'"{step}"') == 2  # code= and script:


def test_no_report_module_dispatches_on_the_rule_name():
    for path in [*ENTRY_MODULES.values(), "workflow_scripts/fusion/report.py"]:
        assert "job.rule" not in (ROOT / path).read_text(encoding="utf-8"), path
