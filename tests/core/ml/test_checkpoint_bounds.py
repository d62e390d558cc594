"""Checkpoint archives whose records alias each other are refused before torch.load (issue 22, item 1).

A zip's central directory can list many records that all point at one stored record; torch.load
reads each of them separately, so a small file can fill gigabytes. The hostile files are built
here, from a real torch.save archive whose central directory is rewritten.
"""
from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import pytest
import torch

from core.ml.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

_CENTRAL = struct.Struct("<4s6H3I5H2I")  # a central directory entry's fixed part (46 bytes)
_END = struct.Struct("<4s4H2IH")  # the end of central directory record (22 bytes)


def _checkpoint(tensors: int, numel: int) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": 0, "model_state_dict": {f"w{i}": torch.zeros(numel) for i in range(tensors)},
                "optimizer_state_dict": {}, "loss": 0.0}, buf)
    return buf.getvalue()


def _central_entries(data: bytes) -> tuple[list[bytearray], int]:
    """The raw central directory entries of a (non-zip64) archive, and where the directory starts."""
    end = data.rindex(b"PK\x05\x06")
    _, _, _, _, count, _, offset, _ = _END.unpack(data[end:end + _END.size])
    entries, pos = [], offset
    for _ in range(count):
        fields = _CENTRAL.unpack(data[pos:pos + _CENTRAL.size])
        length = _CENTRAL.size + fields[10] + fields[11] + fields[12]
        entries.append(bytearray(data[pos:pos + length]))
        pos += length
    return entries, offset


def aliased(tensors: int = 100, numel: int = 25_000, alias: bool = True,
            declare: dict[str, int] | None = None) -> bytes:
    """A checkpoint of ``tensors`` storages of ``numel`` floats where (``alias``) only the first
    storage's record is stored: the central directory points every other storage's entry at that
    one record. ``declare`` overrides the sizes some entries declare."""
    data = _checkpoint(tensors, numel)
    infos = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    entries, directory = _central_entries(data)
    first = infos["archive/data/0"]
    dropped = {f"archive/data/{k}" for k in range(1, tensors)} if alias else set()
    body, moved = bytearray(), {}
    order = sorted(infos.values(), key=lambda i: i.header_offset)
    for info, nxt in zip(order, [*order[1:], None], strict=True):
        stop = nxt.header_offset if nxt is not None else directory
        if info.filename in dropped:
            continue
        moved[info.filename] = len(body)
        body += data[info.header_offset:stop]
    out = bytearray()
    for raw in entries:
        name = bytes(raw[_CENTRAL.size:_CENTRAL.size + struct.unpack_from("<H", raw, 28)[0]]).decode()
        offset = moved[first.filename] if name in dropped else moved[name]
        struct.pack_into("<I", raw, 42, offset)
        if name in (declare or {}):
            struct.pack_into("<II", raw, 20, declare[name], declare[name])
        out += raw
    end = _END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), len(out), len(body), 0)
    return bytes(body + out + end)


def test_the_hostile_file_is_what_the_attack_sends():
    """Without the check, torch.load reads the one stored record once per alias (this is the attack)."""
    hostile = aliased(tensors=8, numel=1000)
    assert len(hostile) < 8 * 4000  # one record of 4,000 bytes holds eight storages
    loaded = torch.load(io.BytesIO(hostile), weights_only=True)
    assert sorted(loaded["model_state_dict"]) == [f"w{i}" for i in range(8)]


def test_a_hundred_aliases_of_one_stored_record_are_refused_before_loading():
    hostile = aliased(tensors=100, numel=25_000)  # 100 KB stored; torch.load would read 10 MB
    assert len(hostile) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(hostile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "checkpoint.overlapping"
    assert "share bytes" in str(info.value) and "archive/data/" in str(info.value)
    assert peak < 2 * len(hostile) + 1_000_000  # nothing was inflated
    assert "共用同一段字节" in info.value.message("zh")


def test_a_thousand_aliases_declaring_gigabytes_are_refused():
    hostile = aliased(tensors=1000, numel=10)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(hostile)
    assert info.value.code == "checkpoint.overlapping"


def test_records_declaring_more_than_the_file_are_refused():
    data = _checkpoint(2, 10)
    last = max(zipfile.ZipFile(io.BytesIO(data)).infolist(), key=lambda i: i.header_offset).filename
    hostile = aliased(tensors=2, numel=10, alias=False, declare={last: 1_000_000_000})  # 1 GB declared
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(hostile)
    assert info.value.code == "checkpoint.declares_too_much"
    assert "more than the file holds" in str(info.value)


def test_a_directory_of_too_many_records_is_refused_before_zipfile_reads_it():
    data = bytearray(_checkpoint(2, 10))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 60_000, 60_000)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bytes(data))
    assert info.value.code == "checkpoint.too_many_records" and "60,000" in str(info.value)


def test_a_local_header_that_disagrees_with_the_directory_is_refused(tmp_path):
    data = bytearray(_checkpoint(2, 10))
    info = next(i for i in zipfile.ZipFile(io.BytesIO(bytes(data))).infolist() if i.filename == "archive/data/1")
    data[info.header_offset + 30 + len("archive/data/")] = ord("9")  # the local name now says data/9
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(bytes(data))
    assert raised.value.code == "checkpoint.inconsistent" and "archive/data/1" in str(raised.value)


def test_real_checkpoints_still_load(tmp_path):
    ckpt = {"epoch": 3, "model_state_dict": {f"layer{i}.weight": torch.randn(64, 64) for i in range(50)},
            "optimizer_state_dict": {"state": {}, "param_groups": []}, "loss": 0.5, "config": {"lr": 0.1}}
    path = save_checkpoint(ckpt, tmp_path / "last.pt")
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model_state_dict"]["layer7.weight"],
                                                ckpt["model_state_dict"]["layer7.weight"])
    with open(path, "rb") as fh:
        assert load_checkpoint(fh)["loss"] == 0.5


def test_a_directory_entry_pointing_outside_the_file_is_refused():
    data = _checkpoint(2, 10)
    entries, directory = _central_entries(data)
    raw = entries[-1]
    struct.pack_into("<I", raw, 42, len(data) + 1000)
    end = _END.pack(b"PK\x05\x06", 0, 0, len(entries), len(entries), sum(map(len, entries)), directory, 0)
    hostile = data[:directory] + b"".join(entries) + end
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(hostile)
    assert info.value.code == "checkpoint.inconsistent"
