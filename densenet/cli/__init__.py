"""The `densenet` command: a thin layer over the library.

    densenet convert densenet121_weights_tf_dim_ordering_tf_kernels.h5 \\
        ckpt/densenet_121/model.ckpt
    densenet classify cat.jpg dog.png --checkpoint ckpt/densenet_121/model.ckpt
    densenet train --image-folder photos/ --data-dir data/photos \\
        --model-dir runs/photos --architecture densenet_121

Modules: `common` (what both console scripts share: argument types, one
error -> exit status table, `--verbose`, quiet TensorFlow), `pretrained`
(convert, classify, export), `train` (train, evaluate). Each command group
is a registrar, `add_<name>_parser(subparsers)`, that adds its subparser(s)
with `common.add_command`; the command's function receives the parsed
`argparse.Namespace` and returns the exit status. To add commands, write a
registrar and append it to `REGISTRARS`.

Nothing here imports TensorFlow at load time: each command imports the
library when it runs.
"""

from densenet.cli import common
from densenet.cli import pretrained
from densenet.cli import train

REGISTRARS = [
    pretrained.add_convert_parser,
    pretrained.add_classify_parser,
    pretrained.add_export_parser,
    train.add_train_parser,
    train.add_evaluate_parser,
]


def build_parser(registrars=None):
  """The argument parser with one subcommand per registrar."""
  return common.build_parser(
      'densenet', 'DenseNets in TF-Slim: convert pretrained weights, classify '
      'images, export SavedModels, train and evaluate classifiers.',
      REGISTRARS if registrars is None else registrars)


def main(argv=None):
  """Entry point of the `densenet` console script; returns the exit status."""
  return common.main(build_parser(), argv)

