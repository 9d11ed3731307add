"""Evaluation through the served pipeline: it sits above both ``model_export`` and ``service``.

``evaluate`` (PCKh of crops, PCK@0.2 of real photos sent through :class:`service.inference.pipeline.Pipeline`),
``photo_eval`` (the photo scoring) and ``quantize`` (int8 twins calibrated on the inputs the service builds).
Their command lines are ``python -m model_export evaluate`` and ``python -m model_export quantize``.
"""
