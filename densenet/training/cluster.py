"""The cluster of a multi-worker run: TF_CONFIG, read and checked, and the
wait for the other workers (no TensorFlow).

    config = cluster.read_tf_config()        # None without TF_CONFIG
    cluster.wait_for_peers(config, timeout=300)

`read_tf_config` says what is wrong with a malformed TF_CONFIG in one line
that names it (`TFConfigError`, a ValueError: exit status 2), where
TensorFlow would raise a bare JSON error or a KeyError. `wait_for_peers`
runs before `MultiWorkerMirroredStrategy` is created: it connects to every
other worker's port until all answer, saying at once which ones it waits
for and then every 10 s how long it has waited, and gives up after
`timeout` seconds with `ClusterTimeoutError` naming the missing workers
(exit status 1). Every worker must be up for the collective group to form;
while it waits, a worker listens on its own port (a plain socket, closed
before TensorFlow takes the port), so that the others, waiting too, see it.
"""

import json
import os
import socket
import sys
import time

# Default of `--cluster-timeout`: seconds to wait for the other workers.
CLUSTER_TIMEOUT_SECONDS = 300
_JOBS = ('chief', 'worker')  # The jobs of MultiWorkerMirroredStrategy.
_REPORT_EVERY = 10.0
_PROBE_INTERVAL = 0.5


class TFConfigError(ValueError):
  """The TF_CONFIG environment variable is malformed."""


class ClusterTimeoutError(TimeoutError):
  """Some workers of TF_CONFIG's cluster did not answer in time.

  Attributes:
    missing: `[(job, index, address)]` of the workers that did not answer.
  """

  def __init__(self, message, missing):
    super().__init__(message)
    self.missing = list(missing)


def _fail(message):
  raise TFConfigError('TF_CONFIG%s%s' % ('' if message.startswith("'s") else
                                         ' ', message))


def _excerpt(text, position):
  before = text[max(0, position - 40):position]
  return '%s%s <-- here' % ('...' if position > 40 else '', before.rstrip())


def read_tf_config(environ=None):
  """TF_CONFIG as a checked dict `{'cluster': {job: [address]}, 'task':
  {'type', 'index'}}`, or None when it is unset or empty.

  Raises:
    TFConfigError: If it is not JSON (with the error's line, column and the
      text before it), lacks `cluster` or `task`, names a task its cluster
      does not have, or an address that is not host:port.
  """
  text = (os.environ if environ is None else environ).get('TF_CONFIG', '')
  if not text.strip():
    return None
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    _fail('is not valid JSON: %s at line %d, column %d: %s' % (
        e.msg, e.lineno, e.colno, _excerpt(text, e.pos)))
  if not isinstance(config, dict):
    _fail('must be a JSON object {"cluster": ..., "task": ...}, got %s.' %
          text.strip()[:80])
  cluster = config.get('cluster')
  if not cluster:
    if 'task' in config:
      _fail('has no "cluster" (e.g. {"cluster": {"worker": ["host-a:12345", '
            '"host-b:12345"]}, "task": {"type": "worker", "index": 0}}).')
    return None
  if not isinstance(cluster, dict):
    _fail('\'s "cluster" must map job names to lists of "host:port", got %s.' %
          json.dumps(cluster)[:80])
  jobs = {}
  for job, addresses in cluster.items():
    if isinstance(addresses, dict):  # {"index": address}, TF's sparse form.
      try:
        addresses = [addresses[k] for k in sorted(addresses, key=int)]
      except (TypeError, ValueError):
        _fail('\'s job %r: task indexes must be integers, got %s.' % (
            job, sorted(addresses)))
    if not isinstance(addresses, list):
      _fail('\'s job %r must be a list of "host:port", got %s.' % (
          job, json.dumps(addresses)[:80]))
    for index, address in enumerate(addresses):
      _parse_address(address, '%s %d' % (job, index))
    jobs[job] = list(addresses)
  task = config.get('task')
  if task is None:
    if sum(len(a) for a in jobs.values()) > 1:
      _fail('has no "task" (this process\'s place in the cluster, e.g. '
            '"task": {"type": "worker", "index": 0}).')
    task = {'type': next(iter(jobs)), 'index': 0}
  if not isinstance(task, dict) or 'type' not in task:
    _fail('\'s "task" must be {"type": "worker", "index": N}, got %s.' %
          json.dumps(task)[:80])
  kind, index = task['type'], task.get('index', 0)
  if not isinstance(index, int) or isinstance(index, bool) or index < 0:
    _fail('\'s task index must be an integer >= 0, got %r.' % (index,))
  if kind != 'evaluator':
    if kind not in jobs:
      _fail('\'s task type %r is not a job of its cluster (%s).' % (
          kind, ', '.join(sorted(jobs))))
    if index >= len(jobs[kind]):
      _fail('\'s task index %d is out of range: its cluster has %d %r task(s) '
            '(indexes 0 to %d).' % (index, len(jobs[kind]), kind,
                                     len(jobs[kind]) - 1))
  return {'cluster': jobs, 'task': {'type': kind, 'index': index}}


def _parse_address(address, what):
  if not isinstance(address, str) or ':' not in address:
    _fail('\'s address of %s must be "host:port", got %r.' % (what, address))
  host, _, port = address.rpartition(':')
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    _fail('\'s address of %s must be "host:port", got %r.' % (what, address))
  return host.strip('[]'), int(port)


def num_workers(config):
  """Workers (chief included) of a `read_tf_config` dict (1 if None)."""
  if config is None:
    return 1
  return max(1, sum(len(config['cluster'].get(job, [])) for job in _JOBS))


def is_chief_task(config=None):
  """Whether this process writes the run's files, from TF_CONFIG: the
  chief, else worker 0 when there is no chief, or a process alone."""
  config = read_tf_config() if config is None else config
  if config is None or num_workers(config) == 1:
    return True
  kind, index = config['task']['type'], config['task']['index']
  if kind == 'chief':
    return True
  return kind == 'worker' and index == 0 and 'chief' not in config['cluster']


def _reachable(address):
  """None if something listens at `address`, else why not (in words)."""
  host, port = _parse_address(address, address)
  try:
    with socket.create_connection((host, port), timeout=1.0):
      return None
  except socket.gaierror:
    return 'unknown host'
  except ConnectionRefusedError:
    return 'connection refused'
  except socket.timeout:
    return 'no answer'
  except OSError as e:
    return e.strerror or type(e).__name__


def _listen(port):
  """A plain listening socket on `port` (all interfaces), or None."""
  listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
  try:
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('', port))
    listener.listen(64)
  except OSError:  # Taken already: the others see something there.
    listener.close()
    return None
  return listener


def _names(missing):
  return ', '.join('%s %d at %s' % (job, index, address)
                   for job, index, address, _ in missing)


def wait_for_peers(config, timeout=CLUSTER_TIMEOUT_SECONDS, log=None,
                   interval=_PROBE_INTERVAL, report_every=_REPORT_EVERY):
  """Waits until every other worker of `config`'s cluster answers.

  Args:
    config: A `read_tf_config` dict (None: nothing to wait for).
    timeout: Seconds to wait at most (> 0).
    log: Where the progress lines go (default: stderr).
    interval, report_every: Seconds between tries, and between lines.

  Raises:
    ClusterTimeoutError: Naming every worker that did not answer.
  """
  if config is None or num_workers(config) == 1:
    return
  if not timeout > 0:
    raise ValueError('cluster_timeout must be > 0 seconds, got %r.' %
                     (timeout,))
  log = log or (lambda line: print(line, file=sys.stderr, flush=True))
  me = (config['task']['type'], config['task']['index'])
  peers = [(job, index, address)
           for job in _JOBS for index, address in
           enumerate(config['cluster'].get(job, [])) if (job, index) != me]
  listener = None
  if me[0] in config['cluster']:
    listener = _listen(_parse_address(
        config['cluster'][me[0]][me[1]], 'this task')[1])
  try:
    started = time.monotonic()
    missing = [peer + (_reachable(peer[2]),) for peer in peers]
    missing = [peer for peer in missing if peer[3]]
    if not missing:
      return
    total = len(peers) + 1
    log('%s %d of a %d-worker cluster (TF_CONFIG): waiting for %s (up to '
        '%d s, the cluster timeout).' % (me[0], me[1], total,
                                        _names(missing), timeout))
    reported = started
    while missing:
      elapsed = time.monotonic() - started
      if elapsed >= timeout:
        raise ClusterTimeoutError(
            'the %d-worker cluster of TF_CONFIG did not form in %d s (the '
            'cluster timeout): no answer from %s; start every worker with '
            'the same command and TF_CONFIG (only task.index differs), or '
            'fix the addresses.' % (total, timeout, '; '.join(
                '%s %d at %s (%s)' % peer for peer in missing)),
            [peer[:3] for peer in missing])
      time.sleep(min(interval, max(0.0, timeout - elapsed)))
      missing = [peer[:3] + (_reachable(peer[2]),) for peer in missing]
      missing = [peer for peer in missing if peer[3]]
      now = time.monotonic()
      if missing and now - reported >= report_every:
        reported = now
        log('still waiting for %s: %d s of %d.' % (
            _names(missing), now - started, timeout))
    log('all %d workers answer (after %.0f s).' % (
        total, time.monotonic() - started))
  finally:
    if listener is not None:
      listener.close()
