"""Export for TF Serving: versioned SavedModels with a deterministic and a faulty signature."""

from tf_lanmax.export.saved_model import for_serving, load_metadata, models_config
from tf_lanmax.export.warmup import read_warmup_requests, write_warmup_requests
from tf_lanmax.layers import deployment_model

__all__ = [
    "deployment_model",
    "for_serving",
    "load_metadata",
    "models_config",
    "read_warmup_requests",
    "write_warmup_requests",
]
