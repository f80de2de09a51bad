"""Files written whole or not at all (imports no TensorFlow).

    atomic.write('out/mask.png', lambda temporary: image.save(temporary))
    atomic.write_json('runs/x/config.json', config)

The content goes to a temporary file beside the target,
`.tmp-<id>-<name>` (the same directory, so the rename is atomic; the same
extension, for writers that go by it), which `os.replace` then moves over
the target: a reader sees the old file or the new one, never a part, and a
write that fails (a full disk, an exception) leaves the old file and no
temporary. The one helper of every such write in the project (run configs,
results, dataset metadata, predicted masks, the best checkpoint's record);
`densenet.weights.checkpoints.save` names its temporaries the same way.
"""

import json
import os
import uuid

TEMPORARY_PREFIX = '.tmp-'
# Matches every temporary `temporary_path` names (for removing leftovers).
TEMPORARY_PATTERN = TEMPORARY_PREFIX + '*-*'


def temporary_path(path):
  """A new temporary path beside `path`: `<dir>/.tmp-<id>-<name>`."""
  directory, name = os.path.split(os.path.abspath(path))
  return os.path.join(directory, '%s%s-%s' % (TEMPORARY_PREFIX,
                                             uuid.uuid4().hex, name))


def write(path, write_to):
  """Calls `write_to(temporary)`, then moves the temporary file to `path`.

  Args:
    path: The file to (re)write.
    write_to: `write_to(temporary_path)` writes the whole content there.

  Returns:
    What `write_to` returned.

  Raises:
    Whatever `write_to` or the rename raised; the temporary is removed.
  """
  temporary = temporary_path(path)
  try:
    result = write_to(temporary)
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)
  return result


def write_json(path, data, default=None):
  """Writes `data` as indented JSON with sorted keys, atomically; creates
  the directory. `default` as `json.dump`'s (for values JSON lacks)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

  def dump(temporary):
    with open(temporary, 'w', encoding='utf-8') as f:
      json.dump(data, f, indent=2, sort_keys=True, default=default)
      f.write('\n')

  write(path, dump)
