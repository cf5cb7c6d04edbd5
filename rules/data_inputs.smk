# Input and params functions of the data stage (rules/data.smk).
from workflow_scripts.data.corpus_config import check_split_block


def check_corpora():
    """Cross-key checks that fail in a dry run, not at job time: ser_corpus names a corpus, and each
    corpus's split.fractions name the splits."""
    if SER_CORPUS not in config["corpora"]:
        raise ValueError(f"config: ser_corpus {SER_CORPUS!r} is not a key of corpora {sorted(config['corpora'])}")
    for name, block in config["corpora"].items():
        check_split_block(block, SPLITS, f"corpora.{name}")
    check_split_block(config["text_corpus"], TEXT_SPLITS, "text_corpus")


check_corpora()


def corpus_tables(block):
    """The table path(s) of a corpus block: ``table`` is one path or a mapping split -> path."""
    table = block["table"]
    return list(table.values()) if isinstance(table, dict) else [table]


def get_corpus_table(wildcards):
    """The table(s) of a speech corpus: produced by the demo rule or supplied by the user."""
    return corpus_tables(config["corpora"][wildcards.corpus])


def get_data_targets():
    """The data stage's final artifacts: the emotion corpus's and the text corpus's summaries."""
    return [paths.SPEECH_SUMMARY.format(corpus=SER_CORPUS), paths.TEXT_SUMMARY]
