# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""BIDS datasets in, BIDS derivatives out (``mrisr bids``): find the inputs with pybids, name the outputs,
write the derivatives' metadata and the group table."""

from __future__ import annotations

from pipeline.bids.derivatives import (
    BIDS_VERSION,
    GROUP_TABLE,
    RAW_DATASET,
    describe_method,
    has_bids_fields,
    source_uri,
    write_bids_sidecar,
    write_dataset_description,
)
from pipeline.bids.group import GROUP_COLUMNS, group_table, write_group_table
from pipeline.bids.inputs import DEFAULT_SUFFIXES, TISSUE_CONTRASTS, BidsInput, find_inputs, tissue_contrast
from pipeline.bids.naming import (
    ENTITY_ORDER,
    RESOLUTION_LABEL,
    bare_label,
    derivative_relpath,
    desc_label,
    split_bids_name,
)

__all__ = [
    "BIDS_VERSION",
    "DEFAULT_SUFFIXES",
    "ENTITY_ORDER",
    "GROUP_COLUMNS",
    "GROUP_TABLE",
    "RAW_DATASET",
    "RESOLUTION_LABEL",
    "TISSUE_CONTRASTS",
    "BidsInput",
    "bare_label",
    "derivative_relpath",
    "desc_label",
    "describe_method",
    "find_inputs",
    "group_table",
    "has_bids_fields",
    "source_uri",
    "split_bids_name",
    "tissue_contrast",
    "write_bids_sidecar",
    "write_dataset_description",
    "write_group_table",
]
