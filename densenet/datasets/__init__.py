"""Classification datasets: one module per source format, one TFRecord format.

    from densenet import datasets

    datasets.create_tfrecords('CIFAR10', 'cifar-10-python.tar.gz', 'data/c10')
    train = datasets.make_dataset('data/c10', 'train', batch_size=64,
                                  is_training=True, augment_images=True)

Modules:
  cifar:         the CIFAR-10/100 python archives (`create_tfrecords`,
                 `read_archive`).
  image_folder:  one sub-folder of images per class (`create_tfrecords`).
  tfrecords:     the shared sharded TFRecord format and `metadata.json`.
  pipeline:      the `tf.data` pipeline (normalize, augment, shuffle, batch,
                 prefetch) over any of them.
"""

from densenet.datasets import cifar
from densenet.datasets import image_folder
from densenet.datasets import pipeline
from densenet.datasets import tfrecords
from densenet.datasets.cifar import create_tfrecords
from densenet.datasets.image_folder import create_tfrecords as create_image_folder_tfrecords
from densenet.datasets.pipeline import input_pipeline
from densenet.datasets.pipeline import make_dataset
from densenet.datasets.tfrecords import read_metadata
