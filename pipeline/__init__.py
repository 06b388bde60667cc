# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Brain MRI super-resolution on MONAI: preprocessing, LR synthesis, SR networks, inference, evaluation."""

from __future__ import annotations

__version__ = "0.1.0"
