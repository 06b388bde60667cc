# Copyright (c) the mrisr-pipeline contributors. Licensed under the Apache License, Version 2.0.
"""Analyses of training runs for a bundle's record: training curves, a GAN critic's score gap, GAN model selection.

Run from the command line as ``mrisr report curves``, ``mrisr report critic-separation`` and
``mrisr report gan-selection`` (:mod:`pipeline.cli.report`).
"""
