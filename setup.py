"""densenet: TF-Slim DenseNets for image classification and segmentation."""

import setuptools

setuptools.setup(
    name='densenet',
    version='0.2.0',
    description=('TF-Slim DenseNets (121/161/169/201/264, CIFAR family) with '
                 'atrous output strides, segmentation heads and ImageNet '
                 'weight import.'),
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=setuptools.find_packages(include=['densenet', 'densenet.*',
                                               'segmentation',
                                               'segmentation.*']),
    py_modules=['densenet_utils'],
    # The ImageNet class names (densenet/data/imagenet_classes.txt).
    package_data={'densenet': ['data/*.txt']},
    install_requires=[
        # tf-slim 1.1.0 needs the fixes in densenet/_env/compat.py on
        # TF >= 2.14; tf-keras pins itself to TF's minor version.
        'tensorflow>=2.13',
        'tf-keras',
        'tf-slim>=1.1.0',
        'numpy',
        'pillow',
        'tqdm',
        'h5py',
    ],
    # TensorBoard itself (to view model/train and model/eval) is optional:
    # training writes its event files with TensorFlow alone.
    # pytest-xdist: the suite runs in two processes (pytest.ini), about 1.6x
    # faster on two cores, since building graphs is single-threaded Python;
    # ruff: the linter .ci/run runs first (configured in pyproject.toml).
    # ai-edge-litert: LiteRT export (--format litert) and running .tflite
    # files (--litert); the tests exercise it.
    extras_require={'test': ['pytest', 'pytest-xdist', 'ruff',
                             'ai-edge-litert>=2.3'],
                    'litert': ['ai-edge-litert>=2.3'],
                    'tensorboard': ['tensorboard']},
    entry_points={'console_scripts': [
        'densenet = densenet.cli:main',
        'segmentation = segmentation.cli:main',
    ]},
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
)
