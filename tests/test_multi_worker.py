"""Multi-replica training: two worker processes, two logical CPUs, sync BN.

Two workers on localhost (MultiWorkerMirroredStrategy, ports picked free)
train the tiny network of test_training with a per-worker batch of B; the
test compares them with one process training on the global batch of 2B from
the same initial checkpoint. With synchronized batch norm every number must
agree: losses, weights, moving statistics. The MirroredStrategy comparison
needs two logical CPU devices, configured before TensorFlow initializes.
Both run in subprocesses: this file run as a script (`worker` and
`mirrored` modes below). Every subprocess has a timeout and is killed in a
`finally`; every training loop is bounded in steps.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from densenet import training
# pylint: disable=g-bad-import-order
from test_training import dataset, loss_fn, tiny_net, toy_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_WORKER_BATCH = 4
NUM_STEPS = 4
LEARNING_RATE = 0.1
# Seconds a worker waits on a collective (an all-reduce) before it fails.
COLLECTIVE_TIMEOUT = 60
PROCESS_TIMEOUT = 240


def make_trainer(model_dir, global_batch_size, strategy, init_checkpoint,
                 checkpoint_every=100, sync_batch_norm=True):
  """The trainer of every run here: SGD with momentum, sync batch norm."""
  return training.Trainer(
      tiny_net, loss_fn, model_dir, global_batch_size, strategy=strategy,
      optimizer_fn=lambda: tf_keras.optimizers.SGD(LEARNING_RATE,
                                                   momentum=0.9),
      checkpoint_every=checkpoint_every, progress=False,
      init_fn=lambda model: training.restore_by_name(
          model.variables_by_name(), init_checkpoint),
      sync_batch_norm=sync_batch_norm)


def training_data(global_batch_size):
  """One global batch, repeated: a resumed run sees the same data."""
  images, labels = toy_data(global_batch_size, seed=5)
  return dataset(images, labels, global_batch_size)


def weights_of(trainer):
  """{slim name: value}; moving statistics read as their replica mean."""
  variables = trainer.model.variables_by_name()
  return {k: variables[k].numpy() for k in sorted(variables)}


def write_initial_checkpoint(directory):
  images = toy_data(1)[0]
  model = training.SlimModel(tiny_net)
  model(images)
  return training.NameBasedCheckpointManager(
      model.variables_by_name(), directory).save(0)


def free_ports(count):
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket()
      s.bind(('localhost', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def start_workers(ports, arguments):
  """Starts one `worker` process per port; returns the Popen objects."""
  cluster = {'worker': ['localhost:%d' % port for port in ports]}
  processes = []
  for index, args in enumerate(arguments):
    config = {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
    env = dict(os.environ, TF_CONFIG=json.dumps(config), PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL='2')
    processes.append(subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), 'worker',
         json.dumps(args)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  return processes


def finish(processes, timeout=PROCESS_TIMEOUT):
  """Waits for every process (bounded); returns [(returncode, stderr)]."""
  deadline = time.time() + timeout
  results = []
  try:
    for process in processes:
      _, stderr = process.communicate(
          timeout=max(1.0, deadline - time.time()))
      results.append((process.returncode, stderr))
  finally:
    stop(processes)
  return results


def stop(processes):
  for process in processes:
    if process.poll() is None:
      process.kill()
      process.communicate(timeout=30)


def run_two_workers(model_dirs, init_checkpoint, out_dir, num_steps,
                    die_at_step=None):
  """Runs two `worker`s; [(returncode, stderr)], the chief's pid, outputs."""
  arguments = [{'model_dir': model_dirs[i], 'init': init_checkpoint,
                'out': os.path.join(out_dir, 'worker%d.npz' % i),
                'num_steps': num_steps} for i in range(2)]
  arguments[1]['die_at_step'] = die_at_step
  started = time.time()
  processes = start_workers(free_ports(2), arguments)
  results = finish(processes)
  print('two workers, %d steps: %.1f s' % (num_steps, time.time() - started))
  return results, processes[0].pid, [a['out'] for a in arguments]


def test_two_workers_equal_one_worker_and_survive_a_dead_worker(tmp_path):
  init_checkpoint = write_initial_checkpoint(str(tmp_path / 'init'))
  # Separate model directories, as on machines without shared storage: the
  # chief restores and broadcasts, the other worker must write nothing.
  model_dirs = [str(tmp_path / 'chief'), str(tmp_path / 'other')]

  # Worker 1 is killed (SIGKILL) after step 2; the chief, which saved step 2,
  # must stop with a clear error instead of waiting forever.
  results, first_chief, outputs = run_two_workers(
      model_dirs, init_checkpoint, str(tmp_path), NUM_STEPS, die_at_step=2)
  (chief_code, chief_log), (other_code, other_log) = results
  assert other_code == -signal.SIGKILL, other_log[-3000:]
  assert chief_code == 1, chief_log[-3000:]
  assert 'WorkerLostError: Training stopped after global step 2' in (
      chief_log), chief_log[-3000:]
  assert 'Restart every worker' in chief_log
  first = dict(np.load(outputs[0]))  # The chief's losses before the kill.
  assert tf.train.latest_checkpoint(model_dirs[0]).endswith('model.ckpt-2')

  # The restarted job resumes from the chief's checkpoint of step 2.
  results, second_chief, outputs = run_two_workers(
      model_dirs, init_checkpoint, str(tmp_path), NUM_STEPS)
  assert [code for code, _ in results] == [0, 0], '\n'.join(
      'worker %d:\n%s' % (i, log[-3000:]) for i, (_, log) in enumerate(results))
  both = [dict(np.load(path)) for path in outputs]

  trainer = make_trainer(str(tmp_path / 'single'), 2 * PER_WORKER_BATCH,
                         tf.distribute.get_strategy(), init_checkpoint)
  result = trainer.train(training_data(2 * PER_WORKER_BATCH), NUM_STEPS)
  expected = weights_of(trainer)

  for key in both[0]:  # The workers agree with each other exactly.
    np.testing.assert_array_equal(both[0][key], both[1][key], err_msg=key)
  assert both[0]['__start_step'] == 2
  losses = np.concatenate([first['__losses'], both[0]['__losses']])
  differences = {'loss': np.abs(losses - result.losses).max()}
  assert sorted(expected) == sorted(k for k in both[0] if '__' not in k)
  moving = [k for k in expected if '/moving_' in k]
  assert len(moving) == 2 * 7  # 7 batch norms, 2 statistics each.
  for kind, keys in (('weights', set(expected) - set(moving)),
                     ('moving statistics', moving)):
    differences[kind] = max(np.abs(both[0][k] - expected[k]).max()
                            for k in keys)
  print('max |two workers - one worker|: %s' % differences)
  assert max(differences.values()) < 1e-5, differences
  # The statistics moved: the comparison is not of initial values.
  initial = tf.train.load_checkpoint(init_checkpoint)
  assert min(np.abs(expected[k] - initial.get_tensor(k)).max()
             for k in moving) > 1e-3

  assert not os.path.exists(model_dirs[1])
  files = sorted(os.listdir(model_dirs[0]))
  assert files == ['checkpoint', 'model.ckpt-2.data-00000-of-00001',
                   'model.ckpt-2.index', 'model.ckpt-2.manifest.json',
                   'model.ckpt-4.data-00000-of-00001', 'model.ckpt-4.index',
                   'model.ckpt-4.manifest.json', 'train']
  # TensorBoard files are named events.out.tfevents.<time>.<host>.<pid>...
  events = os.listdir(os.path.join(model_dirs[0], 'train'))
  writers = {int(re.search(r'\.(\d+)\.\d+\.v2$', name).group(1))
             for name in events}
  assert writers == {first_chief, second_chief}


def test_mirrored_sync_batch_norm_equals_one_replica(tmp_path):
  output = subprocess.run(
      [sys.executable, os.path.abspath(__file__), 'mirrored', str(tmp_path)],
      capture_output=True, text=True, cwd=ROOT, timeout=PROCESS_TIMEOUT,
      env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='2'))
  assert output.returncode == 0, output.stderr[-3000:]
  differences = json.loads(output.stdout.strip().splitlines()[-1])
  print('max |two replicas - one replica|: %s' % differences)
  assert differences['num_replicas'] == 2
  for kind in ('loss', 'weights', 'moving statistics'):
    assert differences['sync'][kind] < 1e-5, differences
  # Each replica's own statistics (half batches of other images) differ.
  assert differences['per_replica']['moving statistics'] > 1e-3, differences


def compare_mirrored(directory):
  """Trains on two logical CPUs and on one device; prints max |diff|s."""
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  init_checkpoint = write_initial_checkpoint(os.path.join(directory, 'init'))
  global_batch_size = 2 * PER_WORKER_BATCH
  runs = {}
  # One MirroredStrategy: two would number their collectives alike.
  mirrored = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  for name, strategy, sync in (
      ('single', tf.distribute.get_strategy(), True),
      ('sync', mirrored, True),
      ('per_replica', mirrored, False)):
    trainer = make_trainer(os.path.join(directory, name), global_batch_size,
                           strategy, init_checkpoint, sync_batch_norm=sync)
    result = trainer.train(training_data(global_batch_size), NUM_STEPS)
    runs[name] = (np.array(result.losses), weights_of(trainer),
                  strategy.num_replicas_in_sync)
  losses, expected, _ = runs['single']
  differences = {'num_replicas': runs['sync'][2]}
  for name in ('sync', 'per_replica'):
    weights = runs[name][1]
    assert sorted(weights) == sorted(expected)  # Same checkpoint names.
    moving = [k for k in expected if '/moving_' in k]
    others = set(expected) - set(moving)
    differences[name] = {
        'loss': float(np.abs(runs[name][0] - losses).max()),
        'weights': float(max(np.abs(weights[k] - expected[k]).max()
                             for k in others)),
        'moving statistics': float(max(np.abs(weights[k] - expected[k]).max()
                                       for k in moving))}
  print(json.dumps(differences))


def test_shard_policy_and_single_worker_defaults(tmp_path):
  policy = tf.data.experimental.AutoShardPolicy
  assert training.shard_policy(10, 2) == policy.FILE
  assert training.shard_policy(2, 2) == policy.FILE
  assert training.shard_policy(1, 2) == policy.DATA
  assert training.shard_policy(None, 1) == policy.DATA
  strategy = tf.distribute.get_strategy()
  assert training.num_workers(strategy) == 1
  assert training.is_chief(strategy)
  assert training.chief_dir(str(tmp_path), strategy) == str(tmp_path)
  with pytest.raises(ValueError, match='timeout_seconds'):
    training.get_strategy('default', timeout_seconds=0)


def worker(args):
  """One worker of the test above: trains to step 2, then to `num_steps`.

  After each part it saves its losses (and at the end its weights) to
  `args['out']`; with `die_at_step` it kills itself once there.
  """
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(2)
  strategy = training.get_strategy(timeout_seconds=COLLECTIVE_TIMEOUT)
  assert strategy.num_replicas_in_sync == 2, strategy
  global_batch_size = PER_WORKER_BATCH * strategy.num_replicas_in_sync
  trainer = make_trainer(args['model_dir'], global_batch_size, strategy,
                         args['init'], checkpoint_every=2)
  data = training_data(global_batch_size)
  values = {'__losses': [], '__start_step': None}
  for target in (2, args['num_steps']):
    result = trainer.train(data, target)
    values['__losses'] += result.losses
    if values['__start_step'] is None:
      values['__start_step'] = result.start_step
    np.savez(args['out'], **values)
    if result.global_step == args.get('die_at_step'):
      os.kill(os.getpid(), signal.SIGKILL)
  values.update(weights_of(trainer))
  np.savez(args['out'], **values)


if __name__ == '__main__':
  if sys.argv[1] == 'worker':
    worker(json.loads(sys.argv[2]))
  elif sys.argv[1] == 'mirrored':
    compare_mirrored(sys.argv[2])
