"""Building blocks of DenseNets, in the style of tf-slim's resnet_utils.py.

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
(https://arxiv.org/abs/1608.06993).

The tf-slim face of `densenet.layers`: a DenseNet is a list of `Block`s run by
`stack_blocks_dense`, which alone owns the stride/rate bookkeeping (atrous
convolution once `output_stride` is reached; the variables are the same at
every output stride). Units are `@slim.add_arg_scope` functions; one
`densenet_arg_scope()` carries every default.

    import tf_slim as slim
    import densenet_utils

    blocks = [densenet_utils.densenet_block('dense_block1', 6, growth_rate=32),
              densenet_utils.transition_block('transition1', 0.5),
              densenet_utils.densenet_block('dense_block2', 12, 32)]
    with slim.arg_scope(densenet_utils.densenet_arg_scope()):
      net = densenet_utils.stack_blocks_dense(net, blocks, output_stride=8,
                                              input_stride=4)

Where each piece lives: `densenet/layers/blocks.py` (blocks, units,
`densenet_arg_scope`), `densenet/layers/stack.py` (`stack_blocks_dense`,
`minimum_input_size`), `densenet/layers/batch_norm.py` (the batch norm),
`densenet/layers/recompute.py` (memory-efficient units).
All tensors are NHWC: `[batch, height, width, channels]`.
"""

# pylint: disable=unused-import
from densenet.layers.batch_norm import batch_norm
from densenet.layers.batch_norm import check_is_training
from densenet.layers.batch_norm import effective_epsilon
from densenet.layers.blocks import Block
from densenet.layers.blocks import dense_unit
from densenet.layers.blocks import densenet_arg_scope
from densenet.layers.blocks import densenet_block
from densenet.layers.blocks import dilated_avg_pool_2x2
from densenet.layers.blocks import transition
from densenet.layers.blocks import transition_block
from densenet.layers.stack import minimum_input_size
from densenet.layers.stack import stack_blocks_dense

__all__ = [
    'Block', 'batch_norm', 'check_is_training', 'dense_unit',
    'densenet_arg_scope', 'densenet_block', 'dilated_avg_pool_2x2',
    'effective_epsilon', 'minimum_input_size', 'stack_blocks_dense',
    'transition', 'transition_block',
]
