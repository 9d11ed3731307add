"""Benchmark peers served by real model-serving frameworks (fixtures, never product code).

Each runs in a venv of its own (:mod:`bench.peer_venvs`) holding only its framework, ONNX Runtime, Pillow
and numpy, so these modules import nothing from the repository but :mod:`bench.peer_apps.pose_onnx`.
"""
