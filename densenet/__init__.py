"""densenet: TF-Slim DenseNets for classification and dense prediction.

    import tf_slim as slim
    from densenet import densenet_121, densenet_arg_scope

    with slim.arg_scope(densenet_arg_scope()):
      logits, end_points = densenet_121(images, num_classes=1000,
                                        is_training=False)

TensorFlow 2 (eager, tf.function, Keras fit, SavedModel):

    model = densenet.keras_model('densenet_121', num_classes=1000)
    logits = model(images, training=False)

Importing this package makes tf-slim 1.1.0 work on the installed TensorFlow
(see `densenet._env.compat`), and loads nothing else: the public names below are
imported from their modules on first use (PEP 562), so `import densenet` and
the `densenet --help` command line do not load TensorFlow.
"""

# Before anything imports TensorFlow: oneDNN on by default (or a warning).
from densenet._env import runtime  # pylint: disable=g-bad-import-order

runtime.enable_onednn()

# pylint: disable=g-import-not-at-top,wrong-import-position
from densenet import architectures  # noqa: E402
from densenet._env import compat  # noqa: E402
from densenet._env import lazy  # noqa: E402

compat.install()
lazy.install_moved()  # The 0.1 module paths, for one release.

__version__ = '0.2.0'

# Public name -> the module that defines it.
_PUBLIC = dict(
    {name: 'densenet.nets' for name in ('MODELS', 'densenet', 'densenet_X',
                                        'densenet_blocks', 'densenet_cifar')
     + architectures.NAMES},
    densenet_arg_scope='densenet_utils',
    load_pretrained='densenet.serve.pretrained',
    keras_model='densenet.training.slim_model')

__all__ = sorted(_PUBLIC) + ['__version__']

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
