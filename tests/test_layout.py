"""The library's import structure: no cycles, function-local imports only
where they keep TensorFlow out, every module importable alone, short modules.

The imports are read from the source with `ast` (module level and inside
functions), plus the lazy public names of the package `__init__` files
(`_PUBLIC`: name -> defining module). `from package import name` is an edge to
`package.name` when that is a module, else to `package`; importing a
submodule does not count as an edge to its parent package.
"""

import ast
import collections
import importlib
import json
import os

import pytest

from conftest import ROOT
from conftest import last_json_line
from conftest import run_python

PACKAGES = ('densenet', 'segmentation')
TOP_MODULES = ('densenet_utils',)
# Third-party packages that load TensorFlow when imported.
TENSORFLOW = ('tensorflow', 'tf_slim', 'tf_keras', 'keras')
MAX_LINES = 400


def library_modules():
  """{module name: path} of every module of the library."""
  modules = {name: os.path.join(ROOT, name + '.py') for name in TOP_MODULES}
  for package in PACKAGES:
    for directory, subdirectories, files in os.walk(
        os.path.join(ROOT, package)):
      subdirectories[:] = sorted(d for d in subdirectories
                                 if d != '__pycache__')
      parts = os.path.relpath(directory, ROOT).split(os.sep)
      for file in sorted(files):
        if file.endswith('.py'):
          stem = file[:-3]
          name = '.'.join(parts + ([] if stem == '__init__' else [stem]))
          modules[name] = os.path.join(directory, file)
  return modules


MODULES = library_modules()

Import = collections.namedtuple('Import', 'target line local')


def _enclosing_functions(tree):
  """{id(node): True} for the nodes inside a function or lambda body."""
  inside = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.Lambda)):
      for child in ast.walk(node):
        if child is not node:
          inside.add(id(child))
  return inside


def imports_of(module):
  """Every import statement of `module` as `Import`s; targets are module
  names (library or third-party, as written)."""
  path = MODULES[module]
  tree = ast.parse(open(path, encoding='utf-8').read(), path)
  local = _enclosing_functions(tree)
  package = module if path.endswith('__init__.py') else (
      module.rpartition('.')[0])
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parent = package.split('.')
        parent = parent[:len(parent) - node.level + 1]
        base = '.'.join(parent + ([base] if base else []))
      targets = [base + '.' + alias.name
                 if base + '.' + alias.name in MODULES else base
                 for alias in node.names]
    else:
      continue
    found += [Import(target, node.lineno, id(node) in local)
              for target in targets]
  return found


def lazy_targets(package):
  """The modules a lazy package's public names come from (its `_PUBLIC`)."""
  public = getattr(importlib.import_module(package), '_PUBLIC', {})
  return {value.partition(':')[0] for value in public.values()}


def import_graph():
  """{module: {library module it imports, at module level, in a function or
  through its lazy public names}}."""
  graph = {}
  for module in MODULES:
    targets = {i.target for i in imports_of(module) if i.target in MODULES}
    if MODULES[module].endswith('__init__.py'):
      targets |= lazy_targets(module)
    graph[module] = targets - {module}
  return graph


def find_cycles(graph):
  """One cycle (a list of modules, first == last) per strongly connected
  component of more than one module (Tarjan's algorithm)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def connect(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in sorted(graph[node]):
      if target not in index:
        connect(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = set()
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.add(member)
        if member == node:
          break
      if len(component) > 1:
        components.append(component)

  for node in sorted(graph):
    if node not in index:
      connect(node)
  cycles = []
  for component in components:
    start = min(component)
    path, seen = [start], {start}
    while True:  # Walk inside the component until a module repeats.
      node = min(t for t in graph[path[-1]] if t in component)
      if node in seen:
        cycles.append(path[path.index(node):] + [node])
        break
      path.append(node)
      seen.add(node)
  return cycles


def test_cycle_finder_finds_a_cycle():
  graph = {'a': {'b'}, 'b': {'c', 'd'}, 'c': {'a'}, 'd': set(), 'e': {'e'}}
  assert find_cycles(graph) == [['a', 'b', 'c', 'a']]
  assert find_cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycles():
  graph = import_graph()
  assert sum(map(len, graph.values())) > 2 * len(graph)  # Edges were read.
  # Module level, in functions (spec -> nets), lazy names (densenet -> nets).
  assert {'densenet._env.runtime', 'densenet.nets',
          'densenet.training.slim_model'} <= graph['densenet']
  assert 'densenet.nets' in graph['densenet.spec']
  cycles = find_cycles(graph)
  assert not cycles, 'import cycles:\n' + '\n'.join(
      ' -> '.join(cycle) for cycle in cycles)


def tensorflow_at_import():
  """{module: whether importing it loads TensorFlow}, from the module-level
  imports (its own and its parent packages'), read statically."""
  direct = {}
  for module in MODULES:
    imports = [i.target for i in imports_of(module) if not i.local]
    parents = ['.'.join(module.split('.')[:n])
               for n in range(1, module.count('.') + 1)]
    direct[module] = (imports + parents, any(
        target.split('.')[0] in TENSORFLOW for target in imports))
  loads = {}

  def visit(module, path=()):
    if module not in loads:
      targets, own = direct[module]
      loads[module] = own or any(
          visit(t, path + (module,)) for t in targets
          if t in MODULES and t not in path)
    return loads[module]

  for module in MODULES:
    visit(module)
  return loads


# Imports each module of argv[1] (a JSON list) after removing every module of
# the library from sys.modules; prints {module: [error or None, whether
# TensorFlow was loaded afterwards, or None if it was already]}.
_IMPORT_EACH = """
import importlib, json, sys, traceback
results = {}
for name in json.loads(sys.argv[1]):
  for loaded in [m for m in sys.modules
                 if m.split('.')[0] in ('densenet', 'segmentation',
                                        'densenet_utils')]:
    del sys.modules[loaded]
  before = 'tensorflow' in sys.modules
  try:
    importlib.import_module(name)
    error = None
  except BaseException:
    error = traceback.format_exc(limit=-3)
  results[name] = [error, None if before else 'tensorflow' in sys.modules]
print(json.dumps(results))
"""


@pytest.fixture(scope='module')
def imported_alone():
  """{module: (error, loads TensorFlow)}: every module imported on its own
  (its library imports done afresh, TensorFlow kept once loaded) in one
  fresh interpreter, the modules the source says are TensorFlow-free
  first."""
  predicted = tensorflow_at_import()
  order = sorted(m for m in MODULES if not m.endswith('__main__'))
  order.sort(key=predicted.get)  # False (TensorFlow-free) first.
  results = last_json_line(run_python(
      '-c', _IMPORT_EACH, json.dumps(order), timeout=240).stdout)
  return {module: (error, predicted[module] if loaded is None else loaded)
          for module, (error, loaded) in results.items()}, predicted


def test_every_module_imports_alone(imported_alone):
  results, predicted = imported_alone
  assert len(results) == len(MODULES) - 1  # All but densenet.cli.__main__.
  failed = {m: error for m, (error, _) in results.items() if error}
  assert not failed, '\n'.join('%s:\n%s' % item for item in failed.items())
  # The source-level reading of what loads TensorFlow is the truth, for every
  # module imported before it was loaded (all the TensorFlow-free ones, and
  # then the first that loads it; the rest keep the reading).
  assert {m: loads for m, (_, loads) in results.items()} == {
      m: predicted[m] for m in results}
  free = {m for m, (_, loads) in results.items() if not loads}
  assert {'densenet', 'segmentation', 'densenet.cli', 'segmentation.cli',
          'densenet.spec', 'densenet.architectures'} <= free
  assert {'densenet.nets', 'densenet_utils'} <= set(results) - free


def test_function_local_imports_only_keep_tensorflow_out(imported_alone):
  # A function-local import belongs in a module that does not load
  # TensorFlow when imported (the command lines' --help, `import densenet`);
  # anywhere else it would only hide a dependency, or a cycle.
  results, _ = imported_alone
  misplaced = []
  for module in sorted(results):
    if results[module][1]:  # Loads TensorFlow.
      misplaced += ['%s:%d imports %s' % (MODULES[module], i.line, i.target)
                    for i in imports_of(module) if i.local]
  assert not misplaced, (
      'function-local imports in modules that load TensorFlow anyway '
      '(import at the top):\n' + '\n'.join(misplaced))


def test_modules_are_short():
  lengths = {os.path.relpath(path, ROOT): sum(1 for _ in open(path))
             for path in MODULES.values()}
  assert len(lengths) > 60
  too_long = {path: n for path, n in lengths.items()
              if n > MAX_LINES}
  assert not too_long, 'modules over %d lines: %s' % (MAX_LINES, too_long)
