"""Model families for seismic velocity inversion, their losses and metrics.

Public API:
    ``build(name, config=None)``: a model by family name (``unet``, ``inversionnet``, ``lstm``,
    ``transformer``); ``load(path)``: a saved ``.keras`` model; ``OUTPUT_NAMES`` / ``VELOCITY`` / ``EDGES``:
    the output keys shared by models, losses, metrics, MLflow and HDF5.

Importing the package registers every custom layer, loss and metric with Keras, so ``.keras`` files load
with ``safe_mode=True``.
"""

from models import losses, metrics
from models.inversionnet import InversionNet, InversionNetConfig
from models.layers import EDGES, OUTPUT_NAMES, VELOCITY
from models.lstm_inverter import LSTMConfig, LSTMInverter
from models.registry import MODELS, available_models, build, config_class, load, load_model_config
from models.transformer_inverter import TransformerConfig, TransformerInverter
from models.unet import DualDecoderUNet, UNetConfig

__all__ = [
    "EDGES",
    "MODELS",
    "OUTPUT_NAMES",
    "VELOCITY",
    "DualDecoderUNet",
    "InversionNet",
    "InversionNetConfig",
    "LSTMConfig",
    "LSTMInverter",
    "TransformerConfig",
    "TransformerInverter",
    "UNetConfig",
    "available_models",
    "build",
    "config_class",
    "load",
    "load_model_config",
    "losses",
    "metrics",
]
