"""Classification datasets: one module per source format, one TFRecord format.

    from densenet import datasets

    datasets.create_tfrecords('CIFAR10', 'cifar-10-python.tar.gz', 'data/c10')
    train = datasets.make_dataset('data/c10', 'train', batch_size=64,
                                  is_training=True, augment_images=True)

Modules (the names below are imported from them on first use):
  cifar:         the CIFAR-10/100 python archives (`create_tfrecords`,
                 `read_archive`).
  image_folder:  one sub-folder of images per class (`create_tfrecords`).
  tfrecords:     the shared sharded TFRecord format and `metadata.json`.
  pipeline:      the `tf.data` pipeline (normalize, augment, shuffle, batch,
                 prefetch) over any of them.
  records:       atomic sharded TFRecord writing (both applications).
"""

from densenet._env import lazy

_PUBLIC = {
    'create_tfrecords': 'densenet.datasets.cifar',
    'create_image_folder_tfrecords':
        'densenet.datasets.image_folder:create_tfrecords',
    'input_pipeline': 'densenet.datasets.pipeline',
    'make_dataset': 'densenet.datasets.pipeline',
    'read_metadata': 'densenet.datasets.tfrecords',
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
