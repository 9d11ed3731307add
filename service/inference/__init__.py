"""The model and its traffic: the ONNX Runtime ``engine``, the dynamic ``batching``, the ``pipeline``
(images -> keypoints), CPU sizing (``cpus``), the ``readiness`` state and the worst-case memory
(``capacity``). Depends on ``core`` and ``imaging``; knows nothing of HTTP."""
