"""Reads the records of a wandb ``.wandb`` transaction log, to check what an offline run wrote.

The file is a LevelDB log (32 KiB blocks of records with a 7-byte header: crc, length, type,
where type 1 is a whole record and 2/3/4 the first/middle/last part of one), after wandb's
own 7-byte file header; each record is a ``wandb_internal_pb2.Record``. The wandb SDK no longer
ships a reader for it.
"""

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb transaction log"
    pos, parts = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        parts += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


def records_by_type(run_dir: Path) -> dict[str, list]:
    """The records of the one offline wandb run under ``run_dir``, grouped by record type."""
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    grouped: dict[str, list] = {}
    for record in read_records(log):
        kind = record.WhichOneof("record_type")
        grouped.setdefault(kind, []).append(getattr(record, kind))
    return grouped
