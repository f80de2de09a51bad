"""Lazy public names of the packages, and the old paths of moved modules.

The package `__init__` files of the project use `attributes` (PEP 562), so
that `import densenet` or `import segmentation` loads no TensorFlow and no
application module until one of their names is used:

    __getattr__, __dir__ = lazy.attributes(__name__,
                                           {'MODELS': 'densenet.nets'})

`MOVED` lists the modules that moved in the 0.2 layout: their old import
paths keep working for one release (`install_moved`, called by
`import densenet`), with a `DeprecationWarning` naming the new one; so do
the old names of renamed arguments (`renamed_arguments`).
"""

import functools
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Old module path -> where it lives now (0.2 layout).
MOVED = {
    'densenet.compat': 'densenet._env.compat',
    'densenet.runtime': 'densenet._env.runtime',
    'densenet.lazy': 'densenet._env.lazy',
    'densenet.convert': 'densenet.weights.convert',
    'densenet.tf2': 'densenet.training.slim_model',
    'densenet.schedules': 'densenet.training.schedules',
    'densenet.signals': 'densenet.training.signals',
    'densenet.rundir': 'densenet.training.rundir',
    'densenet.pretrained': 'densenet.serve.pretrained',
    'densenet.export': 'densenet.serve.export',
    'densenet.inference': 'densenet.serve.rewrite',
    'densenet.records': 'densenet.datasets.records',
    'densenet.recipe': 'densenet.classification.recipe',
    'densenet.cli_common': 'densenet.cli.common',
    'densenet.train_cli': 'densenet.cli.train',
    'segmentation.eval_options': 'segmentation.options',
    'segmentation.synthetic': 'segmentation.data.synthetic',
}


def attributes(package_name, public):
  """The module-level `__getattr__` and `__dir__` of a lazy package.

  Args:
    package_name: The package's `__name__`.
    public: A dict from public name to the name of the module defining it,
      or to 'module:attribute' when the module calls it otherwise.

  Returns:
    `(__getattr__, __dir__)`. The first use of a name imports its module and
    stores the value in the package, so later uses are plain lookups. A
    name that is not public but a submodule of the package (e.g.
    `densenet.datasets.cifar`) is imported as `import` would.
  """

  def __getattr__(name):  # pylint: disable=invalid-name
    if name in public:
      module, _, attribute = public[name].partition(':')
      value = getattr(importlib.import_module(module), attribute or name)
    elif not name.startswith('_') and importlib.util.find_spec(
        package_name + '.' + name) is not None:
      value = importlib.import_module(package_name + '.' + name)
    else:
      raise AttributeError('module %r has no attribute %r' %
                           (package_name, name))
    setattr(sys.modules[package_name], name, value)
    return value

  def __dir__():  # pylint: disable=invalid-name
    return sorted(set(vars(sys.modules[package_name])) | set(public))

  return __getattr__, __dir__


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Resolves an old module path of `MOVED` to the module at its new one."""

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname not in MOVED:
      return None
    return importlib.util.spec_from_loader(fullname, self)

  def create_module(self, spec):
    return None  # The default module; exec_module swaps in the real one.

  def exec_module(self, module):
    new = MOVED[module.__name__]
    warnings.warn('%s moved to %s; the old path works until the next '
                  'release.' % (module.__name__, new), DeprecationWarning,
                  stacklevel=2)
    # The import system returns whatever sys.modules holds after exec_module.
    sys.modules[module.__name__] = importlib.import_module(new)


def install_moved():
  """Makes the old paths of `MOVED` importable (once per process).

  Appended to `sys.meta_path`: consulted only when no real module has the
  name.
  """
  if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def renamed_arguments(**renames):
  """Decorates a function whose arguments `renames` ({old: new}) renamed:
  for one release it also takes them under their 0.1 names, by keyword,
  with a `DeprecationWarning` naming the new one.

      @lazy.renamed_arguments(model_name='architecture')
      def read_weights(source, architecture=None): ...
  """

  def decorate(function):

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
      for old, new in renames.items():
        if old not in kwargs:
          continue
        if new in kwargs:
          raise TypeError('%s() got %s and its old name %s; give %s.' %
                          (function.__qualname__, new, old, new))
        warnings.warn('%s(%s=...) is deprecated: the argument is named %s.'
                      % (function.__qualname__, old, new), DeprecationWarning,
                      stacklevel=2)
        kwargs[new] = kwargs.pop(old)
      return function(*args, **kwargs)

    return wrapper

  return decorate
