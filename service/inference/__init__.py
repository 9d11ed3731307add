"""The model and its traffic: the ONNX Runtime ``engine``, the dynamic ``batching``, the ``pipeline``
(images -> keypoints), CPU sizing (``cpus``) and the ``readiness`` state. Depends on ``core`` and
``imaging``; knows nothing of HTTP."""
