"""WER and CER of one split's transcripts (jiwer, after the shared normalisation) -> JSON."""

from __future__ import annotations

import argparse

from workflow_scripts.asr.text import NormalizeConfig, score_transcripts
from workflow_scripts.asr.transcribe import read_transcripts
from workflow_scripts.common.files import parse_json_argument, write_json
from workflow_scripts.common.logs import setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--normalize", required=True, help="asr.normalize block as JSON")
    parser.add_argument("--transcripts", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    normalize = NormalizeConfig.from_dict(parse_json_argument(args.normalize, "--normalize"))
    frame = read_transcripts(args.transcripts)
    scores = score_transcripts(frame["reference"].tolist(), frame["hypothesis"].tolist(), normalize)
    write_json(args.out, {"split": args.split, "transcripts": args.transcripts, **scores})


if __name__ == "__main__":
    main()
