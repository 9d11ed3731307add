"""The model and its traffic: the ONNX Runtime ``engine``, the dynamic ``batching``, the ``pipeline``
(images -> keypoints) and the ``readiness`` state. Depends on ``pose`` and ``imaging``; knows nothing of HTTP."""
