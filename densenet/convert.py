"""Weight import: the one place that knows every weight-name mapping.

Pretrained DenseNet weights exist in three layouts; each maps onto the
variables of our `densenet_121/169/201/161` (see `densenet.nets`):

  'keras'        keras.applications.DenseNet121/169/201: a live `keras.Model`
                 (Keras 3 or tf-keras), a legacy `.h5` weights file (the
                 published `densenet121_weights_tf_dim_ordering_tf_kernels.h5`,
                 tf-keras `save_weights`, Keras 3 `model.save('x.h5')`), a
                 Keras 3 `.weights.h5` file or a `.keras` archive.
                 BN epsilon 1.001e-5, normalization 'torch'.
  'pudae'        TF-Slim checkpoints of pudae/tensorflow-densenet
                 (`tf-densenet121.ckpt`, 161, 169; converted from Caffe).
                 BN epsilon 1.1e-5, normalization 'pudae'.
  'torchvision'  a torchvision DenseNet `state_dict` given as a dict of numpy
                 arrays (`{k: v.numpy() for k, v in sd.items()}`) or an `.npz`
                 file of it. BN epsilon 1e-5, normalization 'torch'.
  'densenet'     our own checkpoints (what `convert` writes).

Typical use:

    import densenet.convert as convert
    convert.convert('densenet121_weights_tf_dim_ordering_tf_kernels.h5',
                    '/tmp/densenet_121/model.ckpt')           # -> metadata

    # Inside a graph built under densenet_arg_scope(batch_norm_epsilon=...):
    weights, metadata = convert.read_weights('/tmp/densenet_121/model.ckpt')
    init_fn = convert.assign_fn(weights, scope='densenet_121')
    init_fn(session)

Checkpoint metadata: a checkpoint written by `save_checkpoint` holds, next to
the variables `<model>/...`, a string tensor `densenet_metadata` with a JSON
object: `model` (e.g. 'densenet_121'), `num_classes` (None without logits),
`batch_norm_epsilon`, `normalization` (a `densenet.preprocessing` mode),
`root_padding` (a `nets.root_block` padding), `source` and `format_version`.
It lives inside the checkpoint, so it cannot be separated from the weights;
`tf.compat.v1.train.Saver` over the model's variables (or
`slim.assign_from_checkpoint_fn`) ignores it. Read it with `read_metadata`.
Networks take the epsilon from `densenet_arg_scope(batch_norm_epsilon=...)`,
the normalization from `densenet.preprocessing.normalize(images, mode)` and
the stem padding from `slim.arg_scope([nets.root_block], padding=...)`
(`pretrained.build_classifier` does all three).

Stem padding: our ImageNet networks pad the stem like Keras and torchvision
by default ((3, 3) before the 7x7/2 convolution, (1, 1) before the 3x3/2 max
pool), so Keras and torchvision weights give their source's logits. pudae's
network used TF 'SAME' padding there ((2, 3) and (0, 1) at even sizes), so
pudae checkpoints record `root_padding: 'same'` and are run with it.

All weight dicts map names relative to the model scope (e.g.
'dense_block1/unit_1/dense_unit/conv1/weights') to numpy arrays in our layout
(kernels `[height, width, in_channels, out_channels]`, logits as a 1x1
convolution `[1, 1, channels, num_classes]`).
"""

import functools
import io
import json
import logging
import os
import re
import zipfile

import numpy as np
import tensorflow as tf
import tqdm

from densenet import spec as spec_lib
from densenet import weights as weights_lib

METADATA_KEY = 'densenet_metadata'
FORMAT_VERSION = 1

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

# Names that exist in sources but are not weights: skipped, never reported.
_IGNORED = (re.compile(r'global_step$'),
            re.compile(r'.*num_batches_tracked$'))

_log = logging.getLogger(__name__)


# One error for weights that do not fit a network (see `densenet.weights`).
WeightMismatchError = weights_lib.WeightMismatchError
_listing = weights_lib._listing  # pylint: disable=protected-access


# ---------------------------------------------------------------------------
# Name rules: (regular expression over a source name, function of the match
# returning our name relative to the model scope, optional array transform).

_BN = r'(gamma|beta|moving_mean|moving_variance)'
_TORCH_BN = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'moving_mean',
             'running_var': 'moving_variance'}
_TBN = r'(weight|bias|running_mean|running_var)'


def _unit(block, unit, rest):
  return 'dense_block%d/unit_%d/dense_unit/%s' % (int(block), int(unit), rest)


def _transition(index, rest):
  return 'transition%d/unit_1/transition/%s' % (int(index), rest)


def _dense_to_conv(kernel):
  """Dense kernel `[channels, classes]` -> 1x1 conv `[1, 1, channels, classes]`."""
  return kernel.reshape((1, 1) + kernel.shape)


def _oihw_to_hwio(kernel):
  return kernel.transpose(2, 3, 1, 0)


def _linear_to_conv(weight):
  """torch Linear `[classes, channels]` -> `[1, 1, channels, classes]`."""
  return _dense_to_conv(weight.T)


# Keras: layer name / weight name, after `_keras_name` normalization. Keras
# blocks are conv2..conv5 and transitions pool2..pool4: one more than ours.
_KERAS_RULES = (
    (r'conv1_conv/kernel', lambda m: 'conv1/weights', None),
    (r'conv1_bn/' + _BN, lambda m: 'conv1/BatchNorm/' + m[1], None),
    (r'conv(\d+)_block(\d+)_0_bn/' + _BN,
     lambda m: _unit(int(m[1]) - 1, m[2], 'preact/' + m[3]), None),
    (r'conv(\d+)_block(\d+)_1_conv/kernel',
     lambda m: _unit(int(m[1]) - 1, m[2], 'conv1/weights'), None),
    (r'conv(\d+)_block(\d+)_1_bn/' + _BN,
     lambda m: _unit(int(m[1]) - 1, m[2], 'conv1/BatchNorm/' + m[3]), None),
    (r'conv(\d+)_block(\d+)_2_conv/kernel',
     lambda m: _unit(int(m[1]) - 1, m[2], 'conv2/weights'), None),
    (r'pool(\d+)_bn/' + _BN,
     lambda m: _transition(int(m[1]) - 1, 'preact/' + m[2]), None),
    (r'pool(\d+)_conv/kernel',
     lambda m: _transition(int(m[1]) - 1, 'conv/weights'), None),
    (r'bn/' + _BN, lambda m: 'postnorm/' + m[1], None),
    # 'fc1000' in the published Keras 2 files, 'predictions' since.
    (r'(?:predictions|fc1000)/kernel', lambda m: 'logits/weights',
     _dense_to_conv),
    (r'(?:predictions|fc1000)/bias', lambda m: 'logits/biases', None),
)

# pudae: variable names without the root scope ('densenet121/').
_PUDAE_RULES = (
    (r'conv1/weights', lambda m: 'conv1/weights', None),
    (r'BatchNorm/' + _BN, lambda m: 'conv1/BatchNorm/' + m[1], None),
    (r'dense_block(\d+)/conv_block(\d+)/x1/BatchNorm/' + _BN,
     lambda m: _unit(m[1], m[2], 'preact/' + m[3]), None),
    (r'dense_block(\d+)/conv_block(\d+)/x1/Conv/weights',
     lambda m: _unit(m[1], m[2], 'conv1/weights'), None),
    (r'dense_block(\d+)/conv_block(\d+)/x2/BatchNorm/' + _BN,
     lambda m: _unit(m[1], m[2], 'conv1/BatchNorm/' + m[3]), None),
    (r'dense_block(\d+)/conv_block(\d+)/x2/Conv/weights',
     lambda m: _unit(m[1], m[2], 'conv2/weights'), None),
    (r'transition_block(\d+)/blk/BatchNorm/' + _BN,
     lambda m: _transition(m[1], 'preact/' + m[2]), None),
    (r'transition_block(\d+)/blk/Conv/weights',
     lambda m: _transition(m[1], 'conv/weights'), None),
    (r'final_block/BatchNorm/' + _BN, lambda m: 'postnorm/' + m[1], None),
    (r'logits/(weights|biases)', lambda m: 'logits/' + m[1], None),
)

# torchvision: state-dict keys, after `_torchvision_name` normalization.
_TORCHVISION_RULES = (
    (r'features\.conv0\.weight', lambda m: 'conv1/weights', _oihw_to_hwio),
    (r'features\.norm0\.' + _TBN,
     lambda m: 'conv1/BatchNorm/' + _TORCH_BN[m[1]], None),
    (r'features\.denseblock(\d+)\.denselayer(\d+)\.norm1\.' + _TBN,
     lambda m: _unit(m[1], m[2], 'preact/' + _TORCH_BN[m[3]]), None),
    (r'features\.denseblock(\d+)\.denselayer(\d+)\.conv1\.weight',
     lambda m: _unit(m[1], m[2], 'conv1/weights'), _oihw_to_hwio),
    (r'features\.denseblock(\d+)\.denselayer(\d+)\.norm2\.' + _TBN,
     lambda m: _unit(m[1], m[2], 'conv1/BatchNorm/' + _TORCH_BN[m[3]]), None),
    (r'features\.denseblock(\d+)\.denselayer(\d+)\.conv2\.weight',
     lambda m: _unit(m[1], m[2], 'conv2/weights'), _oihw_to_hwio),
    (r'features\.transition(\d+)\.norm\.' + _TBN,
     lambda m: _transition(m[1], 'preact/' + _TORCH_BN[m[2]]), None),
    (r'features\.transition(\d+)\.conv\.weight',
     lambda m: _transition(m[1], 'conv/weights'), _oihw_to_hwio),
    (r'features\.norm5\.' + _TBN, lambda m: 'postnorm/' + _TORCH_BN[m[1]],
     None),
    (r'classifier\.weight', lambda m: 'logits/weights', _linear_to_conv),
    (r'classifier\.bias', lambda m: 'logits/biases', None),
)

_RULES = {'keras': _KERAS_RULES, 'pudae': _PUDAE_RULES,
          'torchvision': _TORCHVISION_RULES}
_COMPILED = {source: [(re.compile(pattern + '$'), name_fn, transform)
                      for pattern, name_fn, transform in rules]
             for source, rules in _RULES.items()}


def map_name(source, name):
  """Our name (relative to the model scope) for a `source` weight name.

  Args:
    source: 'keras', 'pudae' or 'torchvision'.
    name: The normalized source name: Keras 'layer/weight' (e.g.
      'conv2_block1_0_bn/gamma'), a pudae variable name without the root scope,
      or a torchvision state-dict key.

  Returns:
    `(our_name, transform)` where transform is None or a function of the
    array; `(None, None)` if no rule matches.
  """
  if source not in _COMPILED:
    raise ValueError('source must be one of %s, got %r.' %
                     (', '.join(sorted(_COMPILED)), source))
  for pattern, name_fn, transform in _COMPILED[source]:
    match = pattern.match(name)
    if match:
      return name_fn(match), transform
  return None, None


def _ignored(name):
  return any(pattern.match(name) for pattern in _IGNORED)


def rename(source, named_arrays, progress=False):
  """Maps `(source name, array)` pairs onto our names and layouts.

  Args:
    source: 'keras', 'pudae' or 'torchvision'.
    named_arrays: An iterable of (normalized source name, numpy array), or a
      dict.
    progress: Whether to show a tqdm progress bar.

  Returns:
    `(weights, unmatched)`: a dict of our relative names to float32 arrays,
    and the sorted source names no rule matched (ignored names excluded).

  Raises:
    ValueError: If two source names map to the same variable.
  """
  if isinstance(named_arrays, dict):
    named_arrays = named_arrays.items()
  weights, unmatched = {}, []
  for name, array in tqdm.tqdm(named_arrays, desc='Reading %s weights' %
                               source, unit='tensor', disable=not progress):
    if _ignored(name):
      continue
    ours, transform = map_name(source, name)
    if ours is None:
      unmatched.append(name)
      continue
    if ours in weights:
      raise ValueError('Two %s weights map to %r (the second is %r).' %
                       (source, ours, name))
    array = np.asarray(array, np.float32)
    weights[ours] = transform(array) if transform else array
  return weights, sorted(unmatched)


# ---------------------------------------------------------------------------
# Reading sources.


def _keras_name(layer_name, weight_name):
  """'conv1/bn', 'conv1/bn/gamma:0' -> 'conv1_bn/gamma' (tf-keras -> Keras 3)."""
  weight = weight_name.split('/')[-1].split(':')[0]
  return '%s/%s' % (layer_name.replace('/', '_'), weight)


# Keras 3 `.weights.h5` stores a layer's variables by position only.
_KERAS_POSITIONAL = {1: ('kernel',), 2: ('kernel', 'bias'),
                     4: ('gamma', 'beta', 'moving_mean', 'moving_variance')}


def _decode(value):
  return value.decode('utf8') if isinstance(value, bytes) else str(value)


def keras_weights(source):
  """Lists the weights of a Keras DenseNet: `[(name, array)]`.

  Args:
    source: A `keras.Model` (Keras 3 or tf-keras), or the path of a legacy
      `.h5` file (weights only or a full model), a Keras 3 `.weights.h5` file
      or a `.keras` archive.

  Returns:
    A list of `('layer_name/weight_name', array)` with Keras 3 layer names
    (tf-keras' 'conv1/conv' becomes 'conv1_conv').

  Raises:
    ValueError: If the file is not a Keras weights file.
  """
  return list(_keras_items(source))


def _keras_items(source):
  """Generator behind `keras_weights`: reads one array at a time."""
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
  reader = tf.train.load_checkpoint(checkpoint)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name != METADATA_KEY}


def read_metadata(checkpoint):
  """The metadata dict of a checkpoint written by `save_checkpoint`.

  Returns:
    The dict, or None if the checkpoint has no metadata.
  """
  reader = tf.train.load_checkpoint(checkpoint)
  if not reader.has_tensor(METADATA_KEY):
    return None
  return json.loads(_decode(reader.get_tensor(METADATA_KEY)))


def _pudae_root(names):
  """'densenet121' if every weight is under a pudae root scope, else None."""
  roots = {name.split('/', 1)[0] for name in names if not _ignored(name)}
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
  try:
    reader = tf.train.load_checkpoint(path)
  except (ValueError, tf.errors.OpError) as error:
    raise ValueError('%s is not a Keras file, an .npz state dict or a TF '
                     'checkpoint: %s' % (path, error)) from error
  names = list(reader.get_variable_to_shape_map())
  if reader.has_tensor(METADATA_KEY):
    return 'densenet'
  if _pudae_root(names):
    return 'pudae'
  return 'densenet'


def read_weights(source, source_format=None, model_name=None, progress=False):
  """Reads weights from any supported source, in our names and layout.

  Args:
    source: A Keras model or file, a TF checkpoint prefix (ours or pudae's),
      a torchvision state dict (dict of numpy arrays) or its `.npz` file.
    source_format: One of `SOURCES`, or None to detect it (`detect_source`).
    model_name: The architecture the weights are for (a name or a
      `densenet_X` config, see `densenet.spec`), or None to infer
      it from the weights (`infer_model`).
    progress: Whether to show a tqdm progress bar.

  Returns:
    `(weights, metadata)`: weights maps names relative to the model scope to
    float32 arrays; metadata is the dict described in the module docstring
    (with 'unmatched': source names no rule matched, for conversions).

  Raises:
    ValueError: For an unknown `source_format` or an unreadable source.
  """
  source_format = source_format or detect_source(source)
  if source_format not in SOURCES:
    raise ValueError('source_format must be one of %s, got %r.' %
                     (', '.join(SOURCES), source_format))
  if source_format == 'densenet':
    metadata = read_metadata(source) or {}
    tensors = checkpoint_tensors(source)
    scopes = {name.split('/', 1)[0] for name in tensors if not _ignored(name)}
    if len(scopes) != 1:
      raise ValueError('%s: expected the variables of one model scope, found '
                       'scopes %s.' % (source, sorted(scopes)))
    scope = scopes.pop()
    weights = {name.split('/', 1)[1]: value
               for name, value in tensors.items() if not _ignored(name)}
    metadata.setdefault('model', scope)
    metadata.setdefault('num_classes', _num_classes(weights))
    metadata.setdefault('batch_norm_epsilon', 1.001e-5)
    metadata.setdefault('normalization', 'torch')
    metadata.setdefault('root_padding', 'symmetric')
    metadata.setdefault('source', 'densenet')
    return weights, metadata
  if source_format == 'keras':
    named = _keras_items(source)
  elif source_format == 'pudae':
    reader = tf.train.load_checkpoint(source)
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
    named = [(_torchvision_name(key), value) for key, value in named]
  weights, unmatched = rename(source_format, named, progress=progress)
  if not weights:
    raise ValueError('No %s DenseNet weights found in %r.' %
                     (source_format, source))
  metadata = dict(SOURCE_DEFAULTS[source_format])
  metadata.update(model=model_name or infer_model(weights),
                  num_classes=_num_classes(weights), source=source_format,
                  unmatched=unmatched)
  return weights, metadata


def _torchvision_name(key):
  """'module.features.denseblock1.denselayer1.norm.1.weight' -> '...norm1...'."""
  key = re.sub(r'^module\.', '', key)
  return re.sub(r'\.(norm|relu|conv)\.(\d+)\.', r'.\1\2.', key)


# ---------------------------------------------------------------------------
# Matching weights with network variables.


def _relative_name(variable, scope):
  name = variable.op.name
  prefix = scope + '/'
  return name[len(prefix):] if name.startswith(prefix) else None


def match_variables(weights, variables, scope):
  """Pairs network variables with weights, refusing any partial match.

  Args:
    weights: Dict of names relative to `scope` to arrays.
    variables: The network's variables (all of them under `scope`).
    scope: The model's variable scope, e.g. 'densenet_121'.

  Returns:
    `(pairs, unused)`: a list of (variable, array) covering every variable,
    and the sorted weight names no variable uses.

  Raises:
    WeightMismatchError: If a variable has no weight or one of another shape;
      the message lists every such variable (and the unused weights).
  """
  pairs, missing, mismatched, used = [], [], [], set()
  for variable in variables:
    name = _relative_name(variable, scope)
    if name is None or name not in weights:
      missing.append(variable.op.name)
      continue
    value = weights[name]
    shape = tuple(variable.shape.as_list())
    if tuple(value.shape) != shape:
      mismatched.append((variable.op.name, list(shape), list(value.shape)))
      continue
    used.add(name)
    pairs.append((variable, value))
  unused = sorted(set(weights) - used)
  if missing or mismatched:
    raise WeightMismatchError(missing, mismatched, unused,
                              context='Cannot load weights into %s' % scope)
  return pairs, unused


def assign_fn(weights, scope, variables=None):
  """Returns `init_fn(session)` that loads `weights` into the graph.

  Call it while the graph can still grow (it adds placeholders and assign
  ops), then run `init_fn(session)` once.

  Args:
    weights: Dict of names relative to `scope` to arrays (`read_weights`).
    scope: The model's variable scope.
    variables: The variables to load, default every global variable under
      `scope` (pass the model variables to skip e.g. optimizer slots, or
      leave out the logits to fine-tune on other classes).

  Returns:
    A function of a `tf.compat.v1.Session`. Its attribute `unused` lists the
    weights no variable took (also logged as a warning).

  Raises:
    WeightMismatchError: If a variable is missing from `weights` or has
      another shape.
  """
  if variables is None:
    variables = tf.compat.v1.global_variables(scope + '/')
  if not variables:
    raise ValueError('No variables under scope %r; build the network first.'
                     % scope)
  pairs, unused = match_variables(weights, variables, scope)
  if unused:
    _log.warning('%d weight(s) not used by %s: %s', len(unused), scope,
                 _listing(unused))
  feed_placeholders, assign_ops = [], []
  with tf.name_scope('load_weights'):
    for variable, _ in pairs:
      placeholder = tf.compat.v1.placeholder(variable.dtype.base_dtype,
                                             variable.shape)
      feed_placeholders.append(placeholder)
      assign_ops.append(tf.compat.v1.assign(variable, placeholder))
  values = [value for _, value in pairs]

  def init_fn(session):
    session.run(assign_ops, dict(zip(feed_placeholders, values)))

  init_fn.unused = unused
  return init_fn


def session_weights(session, scope, variables=None):
  """`{name relative to scope: array}` of a network's variables in a session.

  With `save_checkpoint`, this turns a trained (or freshly initialized)
  network into a checkpoint with metadata.
  """
  if variables is None:
    variables = tf.compat.v1.global_variables(scope + '/')
  values = session.run(list(variables))
  return {_relative_name(v, scope): value
          for v, value in zip(variables, values)}


def expected_variables(model_name, num_classes):
  """`{relative name: shape}` of a network.

  Args:
    model_name: An architecture name or `densenet_X` config (see
      `densenet.spec.resolve`).
    num_classes: Its logits, or None.
  """
  return dict(_expected_variables(json.dumps(model_name, sort_keys=True),
                                  num_classes))


@functools.lru_cache(maxsize=8)
def _expected_variables(architecture_json, num_classes):
  """Builds the network once per (architecture, classes): a few seconds."""
  spec = spec_lib.ModelSpec(json.loads(architecture_json),
                            num_classes=num_classes)
  with tf.Graph().as_default():
    images = tf.compat.v1.placeholder(tf.float32, [1, 224, 224, 3])
    spec.build(images, is_training=False)
    return tuple((_relative_name(v, spec.scope), tuple(v.shape.as_list()))
                 for v in tf.compat.v1.global_variables(spec.scope + '/'))


def check_weights(weights, model_name, num_classes):
  """Raises `WeightMismatchError` unless `weights` fit the network exactly."""
  expected = expected_variables(model_name, num_classes)
  missing = sorted(set(expected) - set(weights))
  unused = sorted(set(weights) - set(expected))
  mismatched = [(name, list(shape), list(weights[name].shape))
                for name, shape in sorted(expected.items())
                if name in weights and tuple(weights[name].shape) != shape]
  if missing or unused or mismatched:
    raise WeightMismatchError(missing, mismatched, unused,
                              context='Weights do not fit %s' % (model_name,))


# ---------------------------------------------------------------------------
# Writing checkpoints.


def save_checkpoint(weights, metadata, prefix, progress=False):
  """Writes a TF (V2) checkpoint of `weights` under the model's scope.

  Args:
    weights: Dict of names relative to the model scope to arrays.
    metadata: Dict with at least 'model' (an architecture name or
      `densenet_X` config), 'batch_norm_epsilon' and 'normalization'; stored
      as the `densenet_metadata` JSON string.
    prefix: The checkpoint prefix (`prefix.index`, `prefix.data-*` are
      written, atomically); its directory is created.
    progress: Unused (kept for callers); writing is one operation.

  Returns:
    `prefix`.
  """
  del progress
  scope = spec_lib.resolve(metadata['model']).scope
  stored = {key: metadata[key] for key in
            ('model', 'num_classes', 'batch_norm_epsilon', 'normalization',
             'root_padding', 'source') if key in metadata}
  stored['format_version'] = FORMAT_VERSION
  tensors = {'%s/%s' % (scope, name): np.asarray(value, np.float32)
             for name, value in weights.items()}
  tensors[METADATA_KEY] = np.array(json.dumps(stored, sort_keys=True),
                                   dtype=object)
  return weights_lib.save(tensors, prefix)


def convert(source, output_prefix, source_format=None, model_name=None,
            check=True, progress=False):
  """Converts pretrained weights into a checkpoint of our network.

  Args:
    source: See `read_weights`.
    output_prefix: Checkpoint prefix to write.
    source_format: One of `SOURCES`, or None to detect it.
    model_name: The target architecture (a name or a `densenet_X` config),
      or None to infer it.
    check: Whether to build the network and require an exact match of names
      and shapes before writing (a few seconds).
    progress: Whether to show tqdm progress bars.

  Returns:
    The metadata written (see the module docstring), plus 'unmatched'.

  Raises:
    WeightMismatchError: If `check` and the weights do not fit the network,
      or if source names matched no rule.
  """
  weights, metadata = read_weights(source, source_format, model_name,
                                   progress=progress)
  if metadata.get('unmatched'):
    raise WeightMismatchError(unused=metadata['unmatched'],
                              context='Unknown %s weight names in %r' %
                              (metadata['source'], source))
  if check:
    check_weights(weights, metadata['model'], metadata['num_classes'])
  save_checkpoint(weights, metadata, output_prefix, progress=progress)
  return metadata
