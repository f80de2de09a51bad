"""Public names of a package imported from their modules on first use.

The package `__init__` files of the project use it (PEP 562), so that
`import densenet` or `import segmentation` loads no TensorFlow and no
application module until one of their names is used:

    __getattr__, __dir__ = lazy.attributes(__name__, {'MODELS': 'densenet.nets'})
"""

import importlib
import sys


def attributes(package_name, public):
  """The module-level `__getattr__` and `__dir__` of a lazy package.

  Args:
    package_name: The package's `__name__`.
    public: A dict from public name to the name of the module defining it.

  Returns:
    `(__getattr__, __dir__)`. The first use of a name imports its module and
    stores the value in the package, so later uses are plain lookups.
  """

  def __getattr__(name):  # pylint: disable=invalid-name
    if name not in public:
      raise AttributeError('module %r has no attribute %r' %
                           (package_name, name))
    value = getattr(importlib.import_module(public[name]), name)
    setattr(sys.modules[package_name], name, value)
    return value

  def __dir__():  # pylint: disable=invalid-name
    return sorted(set(vars(sys.modules[package_name])) | set(public))

  return __getattr__, __dir__
