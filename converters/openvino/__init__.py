"""OpenVINO: conversion with ``openvino.convert_model`` straight from PyTorch, quantization with NNCF.

``export`` is the registry's exporter (model.xml + model.bin); ``quantize`` holds the precisions' recipes
(NNCF's post-training quantization and weight compression); ``compat`` imports the two libraries quietly;
``diagnose`` is the registry's ``intermediates`` hook, ``layers`` maps IR ops to torch module paths.
"""
