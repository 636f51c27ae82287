"""The validated rows between the two passes, in a temporary file.

Pass 1 checks every record once and writes the valid rows here, batch by batch (MessagePack);
pass 2 reads the batches back instead of parsing and checking the CSV a second time. Memory
stays bounded by one batch; the file is deleted when closed. It also means pass 2 writes
exactly the rows pass 1 checked, even if the CSV file changes meanwhile.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from types import TracebackType

import msgspec

from guanxi.importer.validation import Row

_LENGTH = struct.Struct("<I")


class RowSpool:
    """Batches of rows written once, then read back in order."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="guanxi-import-")  # noqa: SIM115 - closed by close()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list[Row])
        self.rows = 0

    def append(self, batch: list[Row]) -> None:
        if not batch:
            return
        data = self._encoder.encode(batch)
        self._file.write(_LENGTH.pack(len(data)))
        self._file.write(data)
        self.rows += len(batch)

    def batches(self) -> Iterator[list[Row]]:
        """The batches in the order they were appended."""
        self._file.flush()
        self._file.seek(0)
        while header := self._file.read(_LENGTH.size):
            (size,) = _LENGTH.unpack(header)
            yield self._decoder.decode(self._file.read(size))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RowSpool:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
