"""Weight import: Keras, pudae and torchvision DenseNet weights read into ours.

Sources ('keras', 'pudae', 'torchvision', and 'densenet' for our own
checkpoints) and what their weights expect (`SOURCE_DEFAULTS`):

  'keras'        keras.applications.DenseNet121/169/201: a live `keras.Model`
                 (Keras 3 or tf-keras), a legacy `.h5` weights file (the
                 published `densenet121_weights_tf_dim_ordering_tf_kernels.h5`,
                 tf-keras `save_weights`, Keras 3 `model.save('x.h5')`), a
                 Keras 3 `.weights.h5` file or a `.keras` archive.
                 BN epsilon 1.001e-5, normalization 'torch', stem 'symmetric'.
  'pudae'        TF-Slim checkpoints of pudae/tensorflow-densenet
                 (`tf-densenet121.ckpt`, 161, 169; converted from Caffe).
                 BN epsilon 1.1e-5, normalization 'pudae', stem 'same' (TF
                 SAME padding before the 7x7/2 convolution and the max pool).
  'torchvision'  a torchvision DenseNet `state_dict` given as a dict of numpy
                 arrays (`{k: v.numpy() for k, v in sd.items()}`) or an `.npz`
                 file of it. BN epsilon 1e-5, normalization 'torch'.

    from densenet.weights import convert
    convert.convert('densenet121_weights_tf_dim_ordering_tf_kernels.h5',
                    'ckpt/densenet_121/model.ckpt')          # -> metadata
    weights, metadata = convert.read_weights('ckpt/densenet_121/model.ckpt')

Weight dicts map names relative to the model scope (e.g.
'dense_block1/unit_1/dense_unit/conv1/weights', rules in
`densenet.weights.names`) to numpy arrays in our layout (kernels `[height,
width, in_channels, out_channels]`, logits a 1x1 convolution `[1, 1,
channels, num_classes]`). The converted checkpoint records the source's
contract in its metadata (`densenet.weights.checkpoints`).
"""

import io
import os
import re
import zipfile

import numpy as np
import tensorflow as tf

from densenet import spec as spec_lib
from densenet._env import lazy
from densenet.weights import assign
from densenet.weights import checkpoints
from densenet.weights import names as names_lib
from densenet.weights import runs

# Source -> what the weights expect from the network and the input pipeline.
SOURCE_DEFAULTS = {
    'keras': {'batch_norm_epsilon': 1.001e-5, 'normalization': 'torch',
              'root_padding': 'symmetric'},
    'pudae': {'batch_norm_epsilon': 1.1e-5, 'normalization': 'pudae',
              'root_padding': 'same'},
    'torchvision': {'batch_norm_epsilon': 1e-5, 'normalization': 'torch',
                    'root_padding': 'symmetric'},
}


SOURCES = ('keras', 'pudae', 'torchvision', 'densenet')


def _decode(value):
  return value.decode('utf8') if isinstance(value, bytes) else str(value)


def _keras_name(layer_name, weight_name):
  """'conv1/bn', 'conv1/bn/gamma:0' -> 'conv1_bn/gamma' (tf-keras -> Keras 3)."""
  weight = weight_name.split('/')[-1].split(':')[0]
  return '%s/%s' % (layer_name.replace('/', '_'), weight)


# Keras 3 `.weights.h5` stores a layer's variables by position only.
_KERAS_POSITIONAL = {1: ('kernel',), 2: ('kernel', 'bias'),
                     4: ('gamma', 'beta', 'moving_mean', 'moving_variance')}


def _keras_items(source):
  """`(Keras weight name, array)` of a Keras model or file, one array at a
  time."""
  if not isinstance(source, (str, os.PathLike)):
    for layer in source.layers:
      for variable in layer.weights:
        name = getattr(variable, 'path', None) or variable.name
        yield (_keras_name(layer.name, name), np.asarray(variable.numpy()))
    return
  import h5py  # pylint: disable=g-import-not-at-top
  path = os.fspath(source)
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      with archive.open('model.weights.h5') as member:
        with h5py.File(io.BytesIO(member.read()), 'r') as f:
          yield from _keras3_h5_items(f, path)
    return
  with h5py.File(path, 'r') as f:
    group = f['model_weights'] if 'model_weights' in f else f
    if 'layer_names' not in group.attrs:
      yield from _keras3_h5_items(f, path)
      return
    for layer in group.attrs['layer_names']:
      layer = _decode(layer)
      for weight in group[layer].attrs.get('weight_names', []):
        weight = _decode(weight)
        yield (_keras_name(layer, weight), np.asarray(group[layer][weight]))


def _keras3_h5_items(f, path):
  """Keras 3 `.weights.h5`: layers/<key>/vars/<i>, the layer name an attr."""
  if 'layers' not in f:
    raise ValueError('%s is not a Keras weights file (no layer_names '
                     'attribute, no layers group).' % path)

  def visit(layers):
    for key in layers:
      layer = layers[key]
      variables = layer.get('vars')
      if variables is not None and len(variables):
        name = _decode(variables.attrs.get('name', key))
        kinds = _KERAS_POSITIONAL.get(len(variables))
        if kinds is None:
          raise ValueError('%s: layer %r has %d variables; expected 1, 2 or '
                           '4.' % (path, name, len(variables)))
        for i, kind in enumerate(kinds):
          yield ('%s/%s' % (name, kind), np.asarray(variables[str(i)]))
      if 'layers' in layer:  # A nested model.
        yield from visit(layer['layers'])

  yield from visit(f['layers'])


def checkpoint_tensors(checkpoint):
  """`{name: array}` of every tensor in a TF checkpoint (metadata excluded)."""
  reader = checkpoints.reader(checkpoint)  # Refuses incomplete files.
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name != checkpoints.METADATA_KEY}


def _pudae_root(names):
  """'densenet121' if every weight is under a pudae root scope, else None."""
  roots = {name.split('/', 1)[0] for name in names if not names_lib.ignored(name)}
  if len(roots) == 1:
    root = roots.pop()
    if re.match(r'densenet\d+$', root):
      return root
  return None


def infer_model(weights):
  """The name of the named architecture whose variables `weights` fit.

  Counts the dense units of each block and reads the growth rate from
  `dense_block1/unit_1/dense_unit/conv2/weights`.

  Raises:
    ValueError: If no named architecture has that structure.
  """
  units = {}
  for name in weights:
    match = re.match(r'dense_block(\d+)/unit_(\d+)/', name)
    if match:
      block, unit = int(match[1]), int(match[2])
      units[block] = max(units.get(block, 0), unit)
  key = 'dense_block1/unit_1/dense_unit/conv2/weights'
  growth_rate = int(weights[key].shape[-1]) if key in weights else None
  return spec_lib.infer_architecture(tuple(units[b] for b in sorted(units)),
                                     growth_rate)


def _num_classes(weights):
  biases = weights.get('logits/biases')
  return None if biases is None else int(biases.shape[0])


def detect_source(source):
  """'keras', 'pudae', 'torchvision' or 'densenet' for a source.

  Keras models and `.h5`/`.keras` files are 'keras'; dicts and `.npz` files
  'torchvision'; TF checkpoints with metadata (or `densenet_*` names)
  'densenet' and with a `densenetNNN/` root scope 'pudae'.
  """
  if isinstance(source, dict):
    return 'torchvision'
  if not isinstance(source, (str, os.PathLike)):
    return 'keras'
  path = os.fspath(source)
  if path.endswith(('.h5', '.hdf5', '.keras')):
    return 'keras'
  if path.endswith('.npz'):
    return 'torchvision'
  if os.path.isfile(path + '.index'):
    checkpoints.check_complete(path)  # Names a truncated file.
  try:
    reader = tf.train.load_checkpoint(path)
  except (ValueError, tf.errors.OpError) as error:
    raise ValueError('%s is not a Keras file, an .npz state dict or a TF '
                     'checkpoint: %s' % (path, error)) from error
  names = list(reader.get_variable_to_shape_map())
  if reader.has_tensor(checkpoints.METADATA_KEY):
    return 'densenet'
  if _pudae_root(names):
    return 'pudae'
  return 'densenet'


def _read_ours(source, architecture, run_dir):
  """`read_weights` of our checkpoints: converted or trained (`runs`)."""
  prefix, metadata = runs.describe(source, run_dir)
  tensors = {name: value for name, value in checkpoint_tensors(prefix).items()
             if runs.is_model_tensor(name)}
  model = architecture or metadata['model']
  if metadata['task'] == 'segmentation':  # Its backbone only.
    scope = spec_lib.resolve(model).scope
    tensors = {n: v for n, v in tensors.items() if n.startswith(scope + '/')}
  scopes = {name.split('/', 1)[0] for name in tensors
            if not names_lib.ignored(name)}
  if len(scopes) != 1:
    raise ValueError('%s: expected the variables of one model scope, found '
                     'scopes %s.' % (source, sorted(scopes)))
  scope = scopes.pop()
  if model is None:  # `describe` found no architecture, nor a named scope.
    raise ValueError(
        '%s holds a network under the scope %r, but no config.json or '
        'metadata next to it records its architecture; give the '
        'architecture (a densenet_X config).' % (source, scope))
  weights = {name.split('/', 1)[1]: value
             for name, value in tensors.items() if not names_lib.ignored(name)}
  metadata['model'] = model
  if metadata['task'] != 'segmentation' and metadata.get(
      'num_classes') is None:
    metadata['num_classes'] = _num_classes(weights)
  metadata.setdefault('source', 'densenet')
  return weights, metadata


@lazy.renamed_arguments(model_name='architecture')
def read_weights(source, source_format=None, architecture=None,
                 progress=False, run_dir=None):
  """Reads weights from any supported source, in our names and layout.

  Args:
    source: A Keras model or file, a TF checkpoint prefix (ours or pudae's)
      or a directory of ours (its latest checkpoint: a training run's
      directory), a torchvision state dict (dict of numpy arrays) or its
      `.npz` file.
    source_format: One of `SOURCES`, or None to detect it (`detect_source`).
    architecture: The architecture the weights are for (a name or a
      `densenet_X` config, see `densenet.spec`), or None to infer it: from
      the checkpoint's metadata or run directory (`runs.describe`), else
      from the weights (`infer_model`).
    progress: Whether to show a tqdm progress bar.
    run_dir: For our checkpoints, the run directory whose config.json
      describes `source` (default: its own directory; see `runs.describe`).

  Returns:
    `(weights, metadata)`: weights maps names relative to the model scope to
    float32 arrays; metadata is the dict described in the module docstring
    (with 'unmatched': source names no rule matched, for conversions, and
    'recorded': the `spec.CONTRACT` settings the source states; the others
    are `spec.DEFAULTS`' guesses), and for our checkpoints what
    `runs.describe` says (class names, image size, task...). A training
    checkpoint's `global_step` and `optimizer/` slots are left out; of a
    segmentation model, the backbone's weights are read.

  Raises:
    ValueError: For an unknown `source_format` or an unreadable source.
  """
  source_format = source_format or detect_source(source)
  if source_format not in SOURCES:
    raise ValueError('source_format must be one of %s, got %r.' %
                     (', '.join(SOURCES), source_format))
  if source_format == 'densenet':
    return _read_ours(source, architecture, run_dir)
  if source_format == 'keras':
    named = _keras_items(source)
  elif source_format == 'pudae':
    reader = checkpoints.reader(source)
    names = sorted(reader.get_variable_to_shape_map())
    root = _pudae_root(names)
    if root is None:
      raise ValueError('%s is not a pudae checkpoint: its variables are not '
                       'all under one densenetNNN/ scope.' % (source,))
    named = ((name[len(root) + 1:] if name.startswith(root + '/') else name,
              reader.get_tensor(name)) for name in names)
  else:
    if isinstance(source, dict):
      named = source.items()
    else:
      with np.load(os.fspath(source)) as archive:
        named = [(key, archive[key]) for key in archive.files]
    named = [(names_lib.torchvision_name(key), value) for key, value in named]
  weights, unmatched = names_lib.rename(source_format, named, progress=progress)
  if not weights:
    raise ValueError('No %s DenseNet weights found in %r.' %
                     (source_format, source))
  metadata = dict(SOURCE_DEFAULTS[source_format],
                  recorded=sorted(spec_lib.CONTRACT))
  metadata.update(model=architecture or infer_model(weights),
                  num_classes=_num_classes(weights), source=source_format,
                  unmatched=unmatched)
  return weights, metadata


@lazy.renamed_arguments(model_name='architecture')
def convert(source, output_prefix, source_format=None, architecture=None,
            check=True, progress=False):
  """Converts pretrained weights into a checkpoint of our network.

  Args:
    source: See `read_weights`.
    output_prefix: Checkpoint prefix to write.
    source_format: One of `SOURCES`, or None to detect it.
    architecture: The target architecture (a name or a `densenet_X`
      config), or None to infer it.
    check: Whether to build the network and require an exact match of names
      and shapes before writing (a few seconds).
    progress: Whether to show tqdm progress bars.

  Returns:
    The metadata written (see the module docstring), plus 'unmatched'.

  Raises:
    WeightMismatchError: If `check` and the weights do not fit the network,
      or if source names matched no rule.
  """
  weights, metadata = read_weights(source, source_format, architecture,
                                   progress=progress)
  if metadata.get('unmatched'):
    raise checkpoints.WeightMismatchError(unused=metadata['unmatched'],
                              context='Unknown %s weight names in %r' %
                              (metadata['source'], source))
  if check:
    assign.check_weights(weights, metadata['model'], metadata['num_classes'])
  checkpoints.save_checkpoint(weights, metadata, output_prefix, progress=progress)
  return metadata
