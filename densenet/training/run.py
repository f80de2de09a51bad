"""How a training run starts in its model directory, for both applications.

    run = run_lib.Run(model_dir, strategy, initial_checkpoint)
    settings = run.settings({'normalization': None, ...})  # 1. resolve
    config = ...                      # a config with those settings
    directory = run.prepare(config)   # 2. check vs config.json, 3. chief_dir
    trainer = Trainer(net_fn, loss_fn, directory, ...)        # 4.
    run.start(trainer, images, config)  # 5. build (restore), 6. write config

1. The settings of the network not given (None) come from the initial
   checkpoint's contract (`densenet.weights.runs.read_contract`), else
   the saved `config.json` of a resumed run, else defaults
   (`densenet.spec.merge_settings`).
2. A resumed run must keep the config's `fixed_settings()`; the saved config
   is read with the config's own `from_dict` first (an older `config.json`,
   e.g. one naming the architecture 'model' or 'backbone', still compares).
3. Only the chief writes into the model directory (`distribute.chief_dir`),
   which must be writable.
4-6. The config is written once the model has been built and restored, so
   a failed first start does not lock the directory to its settings.

A config is `segmentation.config.ModelConfig` or
`densenet.classification.config.ClassificationConfig`: any object with
`to_dict()`, a classmethod `from_dict(values)` and `fixed_settings()`.
"""

from densenet import spec as spec_lib
from densenet.training import distribute
from densenet.training import rundir
from densenet.weights import runs


class Run(object):
  """The start of a training run in `model_dir` (see the module docstring).

  Args:
    model_dir: The model directory (config.json, checkpoints, events).
    strategy: The `tf.distribute.Strategy` of the run.
    initial_checkpoint: Optional checkpoint whose contract the run takes.
    what: The directory's name in messages.

  Attributes:
    saved: The saved config of `model_dir` as read, or None (a fresh run).
    contract: What `initial_checkpoint` records (`read_contract`), or None.
  """

  def __init__(self, model_dir, strategy, initial_checkpoint=None,
               what='model directory'):
    self.model_dir = model_dir
    self.strategy = strategy
    self.what = what
    self.saved = rundir.read_config(model_dir)
    self.contract = (runs.read_contract(initial_checkpoint)
                     if initial_checkpoint else None)

  def settings(self, explicit, defaults=None):
    """`explicit` ({name: value or None}) with every None resolved (step 1).

    Raises:
      ValueError: If a given value contradicts the initial checkpoint.
    """
    return spec_lib.merge_settings(explicit, self.contract, self.saved,
                                   defaults)

  def prepare(self, config):
    """Checks `config` against the saved one (step 2); returns the directory
    this process writes to (step 3).

    Raises:
      ValueError: Naming every fixed setting `config` changes.
      rundir.OutputDirError: If the directory cannot be written.
    """
    if self.saved is not None:
      saved = _comparable(type(config).from_dict(self.saved).to_dict())
      rundir.check_config(self.model_dir, saved,
                          _comparable(config.to_dict()),
                          config.fixed_settings())
    # Every worker resolved the settings from the saved config; only the
    # chief writes to model_dir (the others to a temporary one).
    directory = distribute.chief_dir(self.model_dir, self.strategy)
    return rundir.writable_dir(directory, self.what)

  def start(self, trainer, images, config):
    """Builds `trainer` on `images` (restoring the latest checkpoint or
    calling its `init_fn`), then writes `config` (steps 5 and 6).

    Returns:
      `(restored, config)`: the checkpoint restored (None on a fresh start)
      and the config dict as written (and read back).
    """
    restored = trainer.build(images)
    written = rundir.write_config(trainer.model_dir, config.to_dict())
    return restored, written


def _comparable(values):
  """A config dict as JSON reads it back, its normalization in one
  spelling ('torch' is `{'mode': 'torch'}`)."""
  values = rundir.jsonable(values)
  if 'normalization' in values:
    values['normalization'] = spec_lib.canonical_normalization(
        values['normalization'])
  return values
