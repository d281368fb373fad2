"""
``flagstaff evaluate``: settings evaluated for every user of a Parquet or CSV
file, written to a Parquet or CSV file one record batch at a time, so that
memory stays bounded by the batch size however many users there are.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any, Optional, Union

import anyio
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from .._errors import ConfigError
from ..client import Client, ManualPoll
from ..client._fetch import redact
from ..core import Config
from . import BatchError
from ._shared import (
    attribute_columns,
    check_columns,
    evaluate_part,
    output_schema,
    read_attributes,
)

__all__ = ("run",)

# File name endings, longest first, and the format and compression of each.
_FORMATS = (
    (".csv.gz", "csv", "gzip"),
    (".csv.bz2", "csv", "bz2"),
    (".csv.zst", "csv", "zstd"),
    (".parquet", "parquet", None),
    (".csv", "csv", None),
    (".pq", "parquet", None),
)

# Bytes of a Parquet file read at once.
_PARQUET_BUFFER = 1 << 20

# Bytes of a CSV block. The reader parses dozens of blocks ahead of the
# batch being evaluated: small blocks keep that small, whatever the batch.
_CSV_BLOCK = 1 << 20


def file_format(path: str, role: str) -> tuple[str, Optional[str]]:
    """
    The format (``parquet`` or ``csv``) and compression of a file, by the
    ending of its name.

    :raises BatchError: for an ending that is neither.
    """
    lowered = path.lower()
    for ending, kind, compression in _FORMATS:
        if lowered.endswith(ending):
            return kind, compression
    endings = ", ".join(ending for ending, _, _ in _FORMATS)
    raise BatchError(
        f"{role} {path!r}: unknown file type; its name ends in one of {endings}"
    )


def load_config(args: argparse.Namespace) -> Config:
    """
    The config of ``--config`` or, downloaded once, of ``--sdk-key``.

    :raises ConfigError: for a file that is no config.
    :raises BatchError: for a download that failed.
    """
    if args.config is not None:
        with open(args.config, "rb") as file:
            raw = file.read()
        try:
            return Config.from_json(raw)
        except ConfigError as exc:
            raise ConfigError(f"config {args.config!r}: {exc}") from exc
    return anyio.run(_download, args.sdk_key, args.base_url)


async def _download(sdk_key: str, base_url: Optional[str]) -> Config:
    async with Client(sdk_key, polling=ManualPoll(), base_url=base_url) as client:
        result = await client.refresh()
        config = client.snapshot().config
    if config is None:
        raise BatchError(
            f"could not download the config of SDK key {redact(sdk_key)!r}: "
            f"{result.error or 'no config was served'}"
        )
    return config


class _Users:
    """
    A users file read batch by batch: the names of its columns, its row count
    when the format records it, and its batches of the columns wanted.
    """

    def __init__(self, path: str, batch_size: int) -> None:
        self.path = path
        self.kind, _ = file_format(path, "users file")
        self.batch_size = batch_size
        self.total: Optional[int] = None
        self._parquet: Optional[pq.ParquetFile] = None
        self._csv_read = pa_csv.ReadOptions(block_size=_CSV_BLOCK)
        with self._failing("cannot read"):
            if self.kind == "parquet":
                # Pre-buffering keeps what it read until the file is done:
                # memory would grow with the file. A buffered stream does not.
                self._parquet = pq.ParquetFile(
                    path, pre_buffer=False, buffer_size=_PARQUET_BUFFER
                )
                self.schema = self._parquet.schema_arrow
                self.total = self._parquet.metadata.num_rows
            else:
                # The first block tells the column names; the values are
                # read again below, every column as text.
                probe = pa_csv.open_csv(path, read_options=self._csv_read)
                names = probe.schema.names
                probe.close()
                self.schema = pa.schema([(name, pa.string()) for name in names])

    def batches(
        self, columns: Sequence[str]
    ) -> Iterator[Union[pa.Table, pa.RecordBatch]]:
        """
        The rows of `columns`, :attr:`batch_size` rows at a time (the last
        batch is shorter).

        :raises BatchError: when the file turns out to be unreadable.
        """
        with self._failing("cannot read"):
            if self._parquet is not None:
                reader: Any = self._parquet.iter_batches(
                    batch_size=self.batch_size, columns=list(columns)
                )
            else:
                reader = pa_csv.open_csv(
                    self.path,
                    read_options=self._csv_read,
                    convert_options=self._csv_convert(columns),
                )
        pending: list[pa.RecordBatch] = []
        rows = 0
        while True:
            with self._failing("cannot read"):
                batch = next(reader, None)
            if batch is None:
                break
            pending.append(batch)
            rows += batch.num_rows
            # CSV blocks hold as many rows as fit: gather them into batches.
            while rows >= self.batch_size:
                table = pa.Table.from_batches(pending)
                yield table.slice(0, self.batch_size)
                pending = table.slice(self.batch_size).to_batches()
                rows -= self.batch_size
        if rows:
            yield pa.Table.from_batches(pending)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()

    def _csv_convert(self, columns: Sequence[str]) -> pa_csv.ConvertOptions:
        # Text as written, not as guessed: "1.10" stays a version, not the
        # number 1.1, and "NA" is Namibia. An empty cell is a missing
        # attribute.
        return pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in columns},
            include_columns=list(columns),
            strings_can_be_null=True,
            null_values=[""],
        )

    def _failing(self, what: str) -> "_Failing":
        return _Failing(f"{what} users file {self.path!r}")


class _Failing:
    """Turns the errors of reading or writing a file into a BatchError that
    names the file."""

    def __init__(self, context: str) -> None:
        self.context = context

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Optional[BaseException], tb: Any) -> bool:
        if isinstance(exc, (pa.ArrowException, OSError)) and not isinstance(
            exc, BatchError
        ):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise BatchError(f"{self.context}: {reason}") from exc
        return False


class _Output:
    """
    The output file, written under a temporary name beside it and renamed
    when complete: a failed run leaves no half-written output.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.kind, self._compression = file_format(path, "output file")
        folder, name = os.path.split(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise BatchError(f"output file {path!r}: no folder {folder!r}")
        self._partial = os.path.join(folder, f".{name}.{os.getpid()}.partial")
        self._writer: Any = None
        self._sink: Any = None

    def write(self, table: pa.Table) -> None:
        with _Failing(f"cannot write output file {self.path!r}"):
            if self._writer is None:
                self._open(table.schema)
            self._writer.write_table(table)

    def commit(self, schema: pa.Schema) -> None:
        """Finishes the file (an empty one of `schema` if nothing was
        written) and gives it its name."""
        with _Failing(f"cannot write output file {self.path!r}"):
            if self._writer is None:
                self._open(schema)
            self._close()
            os.replace(self._partial, self.path)

    def discard(self) -> None:
        try:
            self._close()
        except (pa.ArrowException, OSError):
            pass
        try:
            os.unlink(self._partial)
        except FileNotFoundError:
            pass

    def _open(self, schema: pa.Schema) -> None:
        if self.kind == "parquet":
            self._writer = pq.ParquetWriter(self._partial, schema)
            return
        self._sink = pa.output_stream(self._partial, compression=self._compression)
        self._writer = pa_csv.CSVWriter(self._sink, schema)

    def _close(self) -> None:
        writer, sink = self._writer, self._sink
        self._writer = self._sink = None
        if writer is not None:
            writer.close()
        if sink is not None:
            sink.close()


class Progress:
    """
    One line on a terminal, rewritten in place: rows done (of how many, when
    known) and rows per second.
    """

    #: seconds between two redraws
    interval = 0.2

    def __init__(self, stream: IO[str], total: Optional[int]) -> None:
        self._stream = stream
        self._total = total
        self._start = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def update(self, rows: int) -> None:
        now = time.monotonic()
        if now - self._drawn >= self.interval:
            self._drawn = now
            self._draw(rows, now)

    def finish(self, rows: int) -> None:
        self._draw(rows, time.monotonic())
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, rows: int, now: float) -> None:
        elapsed = now - self._start
        rate = rows / elapsed if elapsed > 0 else 0.0
        if self._total:
            done = f"{rows:,} of {self._total:,} rows ({100 * rows / self._total:.0f}%)"
        else:
            done = f"{rows:,} rows"
        text = f"{done}, {rate:,.0f} rows/s, {elapsed:.1f} s"
        # Spaces wipe what is left of a longer line drawn before.
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)


def run(args: argparse.Namespace, stderr: Optional[IO[str]] = None) -> int:
    """
    Runs ``flagstaff evaluate`` with parsed arguments; returns its exit status.

    :raises BatchError: for an unreadable or unknown file, a missing column
        or an unknown key.
    :raises ConfigError: for a config file that is no config.
    """
    if args.batch_size < 1:
        raise BatchError(f"--batch-size is at least 1, not {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise BatchError(f"--threads is at least 1, not {args.threads}")
    output = _Output(args.output)
    users = _Users(args.users, args.batch_size)
    try:
        config = load_config(args)
        keys = args.key or config.keys()
        schema = output_schema(config, keys, args.variation_ids)
        keep = args.keep or []
        available = users.schema.names
        check_columns(
            available,
            keep,
            schema,
            f"users file {args.users!r}",
            args.identifier,
            " (--identifier COLUMN names another)",
        )

        # Only the attributes the settings read, and the columns to keep.
        attributes = attribute_columns(
            available, read_attributes(config, keys), args.identifier
        )
        columns = list(dict.fromkeys([*attributes.values(), *keep]))
        stderr = stderr or sys.stderr
        progress = Progress(stderr, users.total) if stderr.isatty() else None

        rows = 0
        for batch in users.batches(columns):
            output.write(
                evaluate_part(
                    config,
                    batch,
                    attributes,
                    keys,
                    keep=keep,
                    threads=args.threads,
                    variation_ids=args.variation_ids,
                )
            )
            rows += batch.num_rows
            if progress is not None:
                progress.update(rows)
        kept = [users.schema.field(name) for name in keep]
        output.commit(pa.schema([*kept, *schema]))
        if progress is not None:
            progress.finish(rows)
    except BaseException:
        output.discard()
        raise
    finally:
        users.close()
    return 0
