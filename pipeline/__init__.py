"""Training, evaluation, inference and experiment tracking (MLflow) for seismic velocity inversion."""

__version__ = "0.1.0"
