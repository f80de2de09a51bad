"""Weights: our checkpoint format, pretrained-weight import, loading into graphs.

Modules (their public names are also importable from this package, on first
use):
  checkpoints:  our format: `save`, `restore_by_name` (-> `RestoreReport`)
                on the one name rule `match_by_name`, `WeightMismatchError`,
                the metadata (`read_metadata`, `save_checkpoint`); `latest` /
                `reader` read only complete checkpoints.
  manifest:     what each checkpoint's files must be (size, CRC-32) and the
                newest complete checkpoint of a directory.
  names:        the weight-name rules of Keras, pudae and torchvision.
  convert:      reading any source in our names and layout (`read_weights`,
                `convert`, `detect_source`).
  runs:         what a checkpoint of ours holds, with its run directory's
                config.json and dataset: the one reader (`describe`, and
                `read_contract` for fine-tuning; `check_classifier`).
  assign:       loading a weight dict into a network, exactly
                (`assign_fn`, `match_variables`, `check_weights`).
"""

from densenet._env import lazy


def _names(module, *names):
  return {name: 'densenet.weights.' + module for name in names}


_PUBLIC = dict(
    **_names('checkpoints', 'save', 'restore_by_name', 'match_by_name',
             'RestoreReport', 'WeightMismatchError', 'OPTIMIZER_PREFIX',
             'checkpoint_model', 'latest', 'reader', 'variable_key',
             'METADATA_KEY', 'FORMAT_VERSION', 'read_metadata',
             'save_checkpoint', 'IncompleteCheckpointError',
             'check_complete'),
    **_names('names', 'map_name', 'rename'),
    # Not `convert.convert`: `densenet.weights.convert` is the module.
    **_names('convert', 'SOURCES', 'SOURCE_DEFAULTS', 'read_weights',
             'detect_source', 'infer_model', 'checkpoint_tensors'),
    **_names('runs', 'describe', 'read_contract', 'check_classifier',
             'is_model_tensor'),
    **_names('assign', 'match_variables', 'assign_fn', 'session_weights',
             'expected_variables', 'check_weights'),
)

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
