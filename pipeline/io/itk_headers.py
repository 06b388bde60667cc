# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""What a MetaImage (``.mha``/``.mhd``) or NRRD (``.nrrd``/``.nhdr``) header says, read without the voxel data.

:func:`header_shape` asks ITK's image IO for the image size only; :func:`data_location` reads the
text header for where the voxel data lie (after the header, or in a data file it names) and
whether they are compressed. Together they let a reader refuse a header that claims more voxels
than its data can hold, or whose data file is missing, before ITK allocates the image.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = ["DataLocation", "data_location", "header_shape"]

_HEADER_BYTES = 1 << 16  # MetaImage and NRRD text headers are far shorter
_NRRD_ENCODINGS = {"raw": False, "gzip": True, "gz": True}  # others (ascii, hex, bzip2): no size bound here


class DataLocation(NamedTuple):
    """Where an image's voxel data lie, per its header."""

    file: Path  # the header's own file (attached data) or the data file it names
    available: int  # bytes of (possibly compressed) voxel data in ``file``; 0 when it does not exist
    compressed: bool  # zlib/gzip-compressed data
    field: str | None  # the header field naming a separate data file; None for attached data
    stored: int | None = None  # bytes of compressed data the header claims (MetaImage's CompressedDataSize)


def header_shape(path: Path) -> tuple[tuple[int, ...], int]:
    """(size per axis, bytes of voxel data) that the header of the image at ``path`` claims; ITK reads the header only.

    Raises:
        RuntimeError: ITK cannot read the header.
    """
    import itk

    io = itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
    if io is None:
        raise RuntimeError("no ITK image IO reads this file")
    io.SetFileName(str(path))
    io.ReadImageInformation()
    shape = tuple(int(io.GetDimensions(axis)) for axis in range(io.GetNumberOfDimensions()))
    return shape, int(io.GetImageSizeInBytes())


def _text_fields(path: Path, separator: str, last_field: str | None) -> tuple[dict[str, str], int | None]:
    """The ``key<separator>value`` fields of a text header and the byte offset where attached data start.

    The header ends after the ``last_field`` line (MetaImage) or at the first empty line (NRRD);
    the offset is ``None`` when it does not end within the first 64 KiB.
    """
    with path.open("rb") as handle:
        head = handle.read(_HEADER_BYTES)
    fields: dict[str, str] = {}
    offset = 0
    for raw in head.splitlines(keepends=True):
        offset += len(raw)
        line = raw.decode("latin-1").strip()
        if not raw.endswith(b"\n"):
            break  # cut off: not a whole header line
        if not line and last_field is None:
            return fields, offset
        key, found, value = line.partition(separator)
        if found and not line.startswith("#"):
            fields[key.strip()] = value.strip()
        if key.strip() == last_field:
            return fields, offset
    return fields, None


def _data_file(header: Path, name: str, field: str, compressed: bool, stored: int | None) -> DataLocation | None:
    """The separate data file ``name`` of ``header``, or ``None`` for a list or pattern of files."""
    if len(name.split()) != 1 or name == "LIST" or "%" in name:
        return None
    file = Path(name) if Path(name).is_absolute() else header.parent / name
    return DataLocation(file, file.stat().st_size if file.is_file() else 0, compressed, field, stored)


def _metaimage_data(path: Path) -> DataLocation | None:
    fields, offset = _text_fields(path, "=", last_field="ElementDataFile")
    name = fields.get("ElementDataFile", "")
    compressed = fields.get("CompressedData", "").lower() == "true"
    size = fields.get("CompressedDataSize", "")
    stored = int(size) if compressed and size.isdigit() else None
    if name == "LOCAL":
        return None if offset is None else DataLocation(path, path.stat().st_size - offset, compressed, None, stored)
    return _data_file(path, name, "ElementDataFile", compressed, stored)


def _nrrd_data(path: Path) -> DataLocation | None:
    fields, offset = _text_fields(path, ":", last_field=None)
    encoding = fields.get("encoding", "").lower()
    if encoding not in _NRRD_ENCODINGS or "byte skip" in fields or "byteskip" in fields:
        return None
    for field in ("data file", "datafile"):
        if field in fields:
            return _data_file(path, fields[field], field, _NRRD_ENCODINGS[encoding], None)
    return None if offset is None else DataLocation(path, path.stat().st_size - offset, _NRRD_ENCODINGS[encoding], None)


def data_location(path: Path) -> DataLocation | None:
    """Where the voxel data of the MetaImage or NRRD file at ``path`` lie, or ``None`` where this cannot tell.

    ``None`` for other formats, for lists or patterns of data files, for NRRD encodings other than
    raw and gzip, for a NRRD ``byte skip``, and for a header that does not end within 64 KiB.
    """
    name = path.name.lower()
    if name.endswith((".mha", ".mhd")):
        return _metaimage_data(path)
    if name.endswith((".nrrd", ".nhdr")):
        return _nrrd_data(path)
    return None
