"""Reading Snakemake's own account of what it would run (tests and benchmarks use it)."""

from __future__ import annotations

import re

_ROW = re.compile(r"^(\S+)\s+(\d+)$")


def planned_jobs(output: str) -> dict[str, int]:
    """Jobs per rule from the "Job stats" table of ``snakemake -n`` output ({} when nothing to do).

    >>> planned_jobs("Job stats:\\njob  count\\n---  -----\\ntrain_lr  2\\nall  1\\ntotal  3\\n")
    {'train_lr': 2, 'all': 1}
    """
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts: dict[str, int] = {}
    for line in table.splitlines()[3:]:
        match = _ROW.match(line.strip())
        if not match:
            break
        rule, count = match.group(1), int(match.group(2))
        if rule != "total":
            counts[rule] = count
    return counts
