"""The DenseNet paper's training recipe, as data (imports no TensorFlow).

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017,
Section 4.2: SGD with Nesterov momentum 0.9, batch 64, learning rate 0.1
divided by 10 at 50% and 75% of 300 epochs, weight decay 1e-4, dropout 0.2
after each convolution when training without augmentation.
`densenet.classification` takes its defaults from here; the command line
shows them in `densenet train --help` without loading TensorFlow.
"""

PAPER_RECIPE = {
    'batch_size': 64,
    'epochs': 300,
    'learning_rate': 0.1,
    'learning_rate_decay_fractions': (0.5, 0.75),
    'learning_rate_decay': 0.1,
    'momentum': 0.9,
    'nesterov': True,
    'weight_decay': 1e-4,
    'dropout_rate_without_augmentation': 0.2,
}

# The paper's dataset names -> (densenet.datasets name, augmentation): "+" is
# the standard augmentation.
PAPER_DATASETS = {
    'C10': ('CIFAR10', False), 'C10+': ('CIFAR10', True),
    'C100': ('CIFAR100', False), 'C100+': ('CIFAR100', True),
}
