"""densenet: TF-Slim DenseNets for classification and dense prediction.

    import tf_slim as slim
    from densenet import densenet_121, densenet_arg_scope

    with slim.arg_scope(densenet_arg_scope()):
      logits, end_points = densenet_121(images, num_classes=1000,
                                        is_training=False)

Importing this package first makes tf-slim 1.1.0 work on the installed
TensorFlow (see `densenet.compat`).
"""

# Before anything imports TensorFlow: oneDNN on by default (or a warning).
from densenet import runtime

runtime.enable_onednn()

# pylint: disable=g-import-not-at-top,wrong-import-position
from densenet import compat

compat.apply()

from densenet_utils import densenet_arg_scope
from densenet.nets import MODELS
from densenet.nets import densenet
from densenet.nets import densenet_X
from densenet.nets import densenet_blocks
from densenet.nets import densenet_cifar
from densenet.nets import densenet_121
from densenet.nets import densenet_161
from densenet.nets import densenet_169
from densenet.nets import densenet_201
from densenet.nets import densenet_264
from densenet.nets import densenet_40_k12
from densenet.nets import densenet_100_k12
from densenet.nets import densenet_100_k24
from densenet.nets import densenet_bc_100_k12
from densenet.nets import densenet_bc_250_k24
from densenet.nets import densenet_bc_190_k40
from densenet.pretrained import load_pretrained

__version__ = '0.1.0'
