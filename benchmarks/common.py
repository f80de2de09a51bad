"""Shared pieces of the benchmark scripts: JSON lines, peak memory, workers.

Every script prints one JSON object per line (one per measured
configuration), with the machine's load average at the end of the
measurement: on a shared machine timings are only comparable within one run,
so the scripts alternate the implementations they compare and report ratios.
"""

import json
import os
import platform
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def peak_rss_gb():
  """Peak resident set size of this process so far, in GB (10^9 bytes)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def current_rss_gb():
  """Resident set size of this process now, in GB (10^9 bytes)."""
  with open('/proc/self/statm') as statm:
    return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e9


def machine():
  """What the numbers depend on: CPU count, load average, TF version.

  A PyTorch worker reports torch's version instead of TensorFlow's (it does
  not import TensorFlow).
  """
  if 'torch' not in sys.modules:
    import tensorflow  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  record = {
      'cpus': os.cpu_count(),
      'loadavg_1min': round(os.getloadavg()[0], 2),
      'python': platform.python_version(),
  }
  if 'tensorflow' in sys.modules:
    record['tensorflow'] = sys.modules['tensorflow'].__version__
    record['onednn'] = os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '1'
  if 'torch' in sys.modules:
    record['torch'] = sys.modules['torch'].__version__
  return record


def emit(record):
  """Prints `record` (a dict) as one JSON line, with the machine facts."""
  record = dict(record, machine=machine())
  print(json.dumps(record, sort_keys=True), flush=True)
  return record


def run_worker(script, args, env=None, echo=True):
  """Runs `python script args` in a fresh process; returns its JSON records.

  A fresh process per configuration makes its peak RSS that configuration's.
  The worker's JSON lines are echoed as they are parsed (unless not
  `echo`). `env` (a dict) adds
  environment variables, e.g. settings that must precede the TensorFlow
  import.

  Raises:
    RuntimeError: If the worker fails; the message has its stderr tail.
  """
  env = dict(os.environ, **(env or {}))
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (ROOT, env.get('PYTHONPATH')) if p)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  proc = subprocess.run([sys.executable, os.path.join(HERE, script)] + args,
                        capture_output=True, text=True, env=env, check=False)
  if proc.returncode:
    raise RuntimeError('%s %s failed (exit %d):\n%s' % (
        script, ' '.join(args), proc.returncode, proc.stderr[-3000:]))
  records = [json.loads(line) for line in proc.stdout.splitlines()
             if line.startswith('{')]
  for record in records if echo else ():
    print(json.dumps(record, sort_keys=True), flush=True)
  return records
