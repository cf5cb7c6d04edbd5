"""DFAT workflow: the tested functions behind every Snakemake rule.

Each module holds small pure functions plus a thin ``main()`` command-line entry point that a
rule calls as ``python -m workflow_scripts.<module> ...``.
"""
