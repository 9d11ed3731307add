"""Pixels: upload bytes -> oriented RGB image (``decode``, with the JPEG fast paths in ``jpeg``),
image -> network input through a core map (``resample``). Depends on ``pose`` only."""
