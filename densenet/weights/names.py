"""Weight names of the three pretrained sources, mapped onto ours.

Each rule is (regular expression over a normalized source name, function of
the match returning our name relative to the model scope, optional array
transform). Keras names are 'layer/weight' (Keras 3 layer names); pudae's
are variable names without their root scope ('densenet121/'); torchvision's
are state-dict keys (`module.` and `norm.1`-style keys normalized first).

    names.map_name('keras', 'conv2_block1_0_bn/gamma')
    # -> ('dense_block1/unit_1/dense_unit/preact/gamma', None)
"""

import re

import numpy as np
import tqdm

# Names that exist in sources but are not weights: skipped, never reported.
_IGNORED = (re.compile(r'global_step$'),
            re.compile(r'.*num_batches_tracked$'))


_BN = r'(gamma|beta|moving_mean|moving_variance)'


_TORCH_BN = {'weight': 'gamma', 'bias': 'beta', 'running_mean': 'moving_mean',
             'running_var': 'moving_variance'}


_TBN = r'(weight|bias|running_mean|running_var)'


def _unit(block, unit, rest):
  return 'dense_block%d/unit_%d/dense_unit/%s' % (int(block), int(unit), rest)


def _transition(index, rest):
  return 'transition%d/unit_1/transition/%s' % (int(index), rest)


def _dense_to_conv(kernel):
  """Dense kernel `[channels, classes]` -> 1x1 conv
  `[1, 1, channels, classes]`."""
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


def ignored(name):
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
    if ignored(name):
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


def torchvision_name(key):
  """'module.features.denseblock1.denselayer1.norm.1.weight' ->
  '...norm1...'."""
  key = re.sub(r'^module\.', '', key)
  return re.sub(r'\.(norm|relu|conv)\.(\d+)\.', r'.\1\2.', key)
