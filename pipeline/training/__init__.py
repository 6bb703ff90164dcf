"""Training: the configuration, ``train(config)`` (one ``model.fit`` with callbacks), checkpoints, the time
budget, distribution and precision, the default dataset and the run summary.

``python -m pipeline.train`` (``pipeline/train.py``) is the command line over it and re-exports its public
names; ``pipeline.compare`` calls ``train`` for every model it compares. Modules: ``config``, ``trainer``,
``callbacks``, ``budget``, ``checkpointing``, ``optimization``, ``distribution``, ``default_dataset``,
``summary``.
"""
