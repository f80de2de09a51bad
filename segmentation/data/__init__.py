"""Segmentation data: VOC-layout folders -> sharded TFRecords -> tf.data.

Modules (each name below is also importable from this package, on first use):
  sources:    where pairs come from (`voc_pairs`, `folder_pairs`).
  labels:     label values, histograms and checks, label PNGs (`LabelError`,
              `check_labels`, `checked_label`, `label_errors`,
              `read_label`, `save_label_png`, `voc_palette`).
  tfrecords:  validated pairs -> atomic shards, and back
              (`write_tfrecords`, `parse_example`, `read_histogram`).
  pipeline:   the tf.data pipeline with DeepLab's augmentation
              (`make_dataset`).
  synthetic:  the embedded default dataset (`segmentation demo`).
"""

from densenet._env import lazy

_PUBLIC = dict(
    {name: 'segmentation.data.sources'
     for name in ('IMAGE_EXTENSIONS', 'voc_pairs', 'folder_pairs')},
    **{name: 'segmentation.data.labels'
       for name in ('BINARY_MASK_HINT', 'LabelError', 'check_remap',
                    'compact_count', 'format_histogram', 'looks_binary',
                    'check_labels', 'as_dict', 'voc_palette',
                    'save_label_png', 'read_label', 'checked_label',
                    'label_errors')},
    **{name: 'segmentation.data.tfrecords'
       for name in ('LABELS_FILE', 'BadPairsError', 'encode_example',
                    'SplitRecords', 'write_tfrecords', 'read_histogram',
                    'parse_example')},
    **{name: 'segmentation.data.pipeline'
       for name in ('augment', 'make_dataset')})

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
