"""The training loop behind ``python -m model_export train`` (the command line: :mod:`model_export.train`).

``config`` (the typed run configuration), ``data`` (datasets, the resumable sampler, loaders), ``loss``
(the heatmap loss and mixed precision), ``run`` (one run's state, how it starts and resumes, what its
checkpoints hold), ``loop`` (steps, epochs, the whole run), ``validation`` and ``log`` (CSV, TensorBoard,
progress).
"""
