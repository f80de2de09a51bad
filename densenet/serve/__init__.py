"""Serving: pretrained classifiers, SavedModel export, faster inference graphs.

Modules (their public names are also importable from this package, on first
use):
  pretrained:  `load_pretrained`, `Classifier` (a network in its own Session).
  export:      `export_saved_model` (SavedModel signatures for TF Serving).
  rewrite:     `optimize`, `optimize_function`: frozen weights, batch norm
               folded into convolutions, transitions pooled first.
  litert:      `export_classifier` (one .tflite, float32 or quantized);
               calibration (int8 calibration images).
  litert_runtime: `LiteRTModel`, `LiteRTClassifier`: run a .tflite of this
               library (numpy and ai-edge-litert only).
"""

from densenet._env import lazy

_PUBLIC = {
    'load_pretrained': 'densenet.serve.pretrained',
    'Classifier': 'densenet.serve.pretrained',
    'export_saved_model': 'densenet.serve.export',
    'optimize': 'densenet.serve.rewrite',
    'optimize_function': 'densenet.serve.rewrite',
    'export_classifier': 'densenet.serve.litert',
    'LiteRTModel': 'densenet.serve.litert_runtime',
    'LiteRTClassifier': 'densenet.serve.litert_runtime',
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
