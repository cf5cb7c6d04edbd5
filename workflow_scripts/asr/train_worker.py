"""One of the data-parallel processes of a fine-tune (``asr.finetune.processes`` > 1).

Started by ``torch.distributed.run``, which ``asr/train.launch_processes`` runs from the
finetune_whisper rule: ``python -m workflow_scripts.asr.train_worker <work>/launch.json``. The JSON
holds ``train_process``'s arguments; the Trainer reads the rank and world size that torchrun puts in
the environment. Rank 0 logs at INFO, the others only warnings (one record per event in the log).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from workflow_scripts.asr.train import die_with_parent, train_process
from workflow_scripts.common.logs import setup_logging


def main(launch_file: str) -> None:
    """Train this rank's share with the arguments of ``launch_file``."""
    die_with_parent()  # torch.distributed.run killed: so is this process
    rank = int(os.environ.get("RANK", "0"))
    setup_logging(logging.INFO if rank == 0 else logging.WARNING)
    arguments = json.loads(Path(launch_file).read_text())
    train_process(**arguments, work_opened=True)


if __name__ == "__main__":
    main(sys.argv[1])
