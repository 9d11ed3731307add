"""The pose core shared by training and serving: numpy only, no HTTP, no torch, no Pillow.

``layout`` (joint names, flip pairs, limbs), ``codec`` (heatmap targets and their decoding),
``geometry`` (the image -> input map and its exact inverse), ``contract`` (the ONNX model's names,
metadata and input geometry) and ``errors`` (the domain errors). It imports neither ``service`` nor
``model_export``: both build on it.
"""
