"""Data every layer shares, torch-free: the built-in shapes dataset and ImageFolder reading and sampling.

``shapes`` generates the built-in labelled dataset (quickstart, validation, calibration, benchmarks);
``imagefolder`` reads, writes, splits and preprocesses ImageFolder trees.
"""
