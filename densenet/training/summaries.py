"""TensorBoard scalars without the tensorboard package (what training
writes)."""

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

# What TensorBoard's `tf.summary.scalar` writes, without needing the
# tensorboard package at training time.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name='scalars')).SerializeToString()


def write_scalar(tag, value, step):
  """Writes a TensorBoard scalar to the default summary writer."""
  tf.summary.write(tag, tf.cast(value, tf.float32), step=step,
                   metadata=_SCALAR_METADATA)
