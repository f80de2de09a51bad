"""Classification: the DenseNet paper's CIFAR recipe, fine-tuning, evaluation.

    from densenet import classification, datasets

    datasets.create_tfrecords('CIFAR10', 'cifar-10-python.tar.gz', 'data/c10')
    results = classification.train('data/c10', 'runs/c10+',
                                   architecture='densenet_bc_100_k12',
                                   augment=True)
    classification.evaluate(train_dir='runs/c10+')
    classification.evaluate_folder('photos/test', checkpoint='runs/photos')

Modules (their public names are also importable from this package, on first
use): `recipe` (the paper's recipe as data, no TensorFlow), `config`
(`ClassificationConfig`, a run's config.json, no TensorFlow), `run`
(`train`, `paper_learning_rate`), `evaluation` (`evaluate`,
`evaluate_model`, `evaluate_folder`, `classification_metrics`), `pictures`
(the confusion matrix drawn, Pillow only).
"""

from densenet._env import lazy

_PUBLIC = dict(
    {name: 'densenet.classification.run'
     for name in ('train', 'paper_learning_rate', 'DEFAULTS', 'CONFIG_FILE',
                  'RESULTS_FILE')},
    **{name: 'densenet.classification.evaluation'
       for name in ('evaluate', 'evaluate_model', 'evaluate_folder',
                    'classification_metrics', 'format_folder_results')},
    **{name: 'densenet.classification.pictures'
       for name in ('confusion_picture', 'save_confusion_picture')},
    ClassificationConfig='densenet.classification.config')

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy.attributes(__name__, _PUBLIC)
