# Input and params functions of the data stage (rules/data.smk).


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
