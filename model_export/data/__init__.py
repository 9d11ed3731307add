"""Training data: the shared top-down crop recipe (:mod:`.augment`) and the datasets that use it."""
