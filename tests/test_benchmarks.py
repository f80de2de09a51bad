"""The benchmark scripts run end to end in their smoke modes (tiny sizes).

They print JSON lines; the tests check the fields the README's tables come
from. Speed itself is never asserted here: it belongs to the benchmarks.
"""

import json
import os

from conftest import ROOT
from conftest import run_python

BENCHMARKS = os.path.join(ROOT, 'benchmarks')


def run_script(*argv):
  proc = run_python(os.path.join(BENCHMARKS, argv[0]), *argv[1:],
                    timeout=600)
  return [json.loads(line) for line in proc.stdout.splitlines()
          if line.startswith('{')]


def test_inference_smoke():
  (record,) = run_script('inference.py', '--smoke')
  assert record['benchmark'] == 'inference'
  assert record['batch_size'] == 2 and record['image_size'] == 32
  assert set(record['images_per_second']) == {'ours', 'keras'}
  assert all(v > 0 for v in record['images_per_second'].values())
  ratio = (record['images_per_second']['ours'] /
           record['images_per_second']['keras'])
  assert abs(record['ratio_ours_to_keras'] - ratio) < 1e-2
  assert record['machine']['cpus'] == os.cpu_count()


def test_keras_train_step_worker_smoke():
  (record,) = run_script('train_step.py', '--worker', '--implementation',
                         'keras', '--batch-size', '2', '--image-size', '32',
                         '--steps', '1')
  assert record['implementation'] == 'keras'
  assert record['model'] == 'densenet_121'
  # The peak is the process's high-water mark: a tiny step may stay under
  # what importing TensorFlow already reached.
  assert record['peak_rss_gb'] >= record['rss_before_model_gb'] > 0
  assert record['seconds_per_step'] > 0 and len(record['step_seconds']) == 1
  # Random weights, 1000 classes: the loss starts near ln(1000) = 6.9.
  assert 3.0 < record['loss'] < 15.0


def test_memory_vs_depth_smoke():
  # Runs train_step.py workers (ours plain and memory-efficient) through the
  # driver, one process each.
  records = run_script('memory_vs_depth.py', '--smoke')
  assert [r['benchmark'] for r in records] == ['train_step'] * 2 + [
      'memory_vs_depth']
  assert [r['implementation'] for r in records[:2]] == ['plain',
                                                        'memory_efficient']
  assert all(r['model'] == 'densenet_bc_10_k12' for r in records[:2])
  (row,) = records[2]['rows']
  assert row['depth'] == 10
  assert row['peak_rss_gb'] == {'plain': records[0]['peak_rss_gb'],
                                'memory_efficient': records[1]['peak_rss_gb']}
  assert row['peak_rss_above_smallest_depth_gb'] == {
      'plain': 0.0, 'memory_efficient': 0.0}


def test_speed_smoke():
  # One process (oneDNN on, the library's default); ours plain and inference.
  records = run_script('speed.py', '--smoke', '--onednn', 'on')
  assert [(r['mode'], r['batch_size']) for r in records] == [('infer', 2),
                                                             ('train', 2)]
  infer, train = records
  assert infer['onednn'] == '1' and infer['image_size'] == 32
  assert set(infer['images_per_second']) == {'ours_plain', 'ours_inference'}
  rates = infer['images_per_second']
  assert abs(infer['speedup_of_ours_inference']['ours_plain'] -
             rates['ours_inference'] / rates['ours_plain']) < 1e-2
  assert set(train['seconds_per_step']) == {'ours_plain'}
  assert train['seconds_per_step']['ours_plain'] > 0
  assert infer['sgemm_gflops'] > 0 and infer['forward_gflop_per_image'] > 0
  fraction = (rates['ours_plain'] * infer['forward_gflop_per_image'] /
              infer['sgemm_gflops'])
  assert abs(infer['fraction_of_sgemm']['ours_plain'] / fraction - 1) < 0.05


def test_profile_ops_smoke():
  records = run_script('profile_ops.py', '--smoke', '--onednn', 'off')
  assert [(r['mode'], r['onednn']) for r in records] == [('infer', '0'),
                                                         ('train', '0')]
  for record in records:
    shares = [op['share'] for op in record['top_ops']]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0
    assert record['nodes_per_step'] > 0
  assert 'Conv2D' in {op['op'] for op in records[0]['top_ops']} | {
      op['op'] for op in records[1]['top_ops']}


def test_conv_bound_smoke():
  # Every Conv2D of the tiny network, grouped by shape; the alternatives
  # (matmul, flipped convolution, shifted matmul) were checked against
  # TensorFlow's ops by the script itself (it fails past 1e-4).
  records = run_script('conv_bound.py', '--smoke', '--onednn', 'off')
  shapes, summary = records[:-1], records[-1]
  assert summary['benchmark'] == 'conv_bound'
  assert summary['machine']['onednn'] is False
  assert summary['distinct_shapes'] == len(shapes)
  assert summary['convolutions'] == sum(r['count'] for r in shapes) > len(
      shapes) - 1
  three_by_three = [r for r in shapes if r['shape']['kernel'] == 3]
  assert three_by_three and all(
      set(r['kernels']) == {
          'forward/conv2d', 'input_grad/backprop_input',
          'input_grad/flipped_conv2d', 'filter_grad/backprop_filter',
          'filter_grad/shifted_matmul'} for r in three_by_three)
  for record in shapes:
    assert all(k['relative_error'] <= 1e-4 for k in record['kernels'].values())
  best = summary['best_seconds']
  ops = summary['tensorflow_op_seconds']
  assert set(best) == set(ops) == {'forward', 'input_grad', 'filter_grad'}
  assert all(0 < best[name] <= ops[name] for name in best)
  assert abs(summary['step_bound_seconds'] - sum(best.values())) < 1e-3


def test_litert_smoke():
  # speed.py's LiteRT rows beside our inference graph, then litert.py's
  # segmentation model (TensorFlow and its three files).
  (infer, train) = run_script('speed.py', '--smoke', '--onednn', 'on',
                              '--implementations', 'ours_inference',
                              'litert_fp32', 'litert_dynamic', 'litert_int8')
  names = {'ours_inference', 'litert_fp32', 'litert_dynamic', 'litert_int8'}
  assert set(infer['images_per_second']) == set(infer['rss_added_gb']) == (
      names)
  assert set(infer['tflite_mb']) == set(infer['peak_rss_alone_gb']) == (
      names - {'ours_inference'})
  # A process that only runs a file: numpy, ai-edge-litert, no TensorFlow.
  assert all(0 < peak < 0.5 for peak in infer['peak_rss_alone_gb'].values())
  assert infer['tflite_mb']['litert_int8'] < infer['tflite_mb']['litert_fp32']
  rates = infer['images_per_second']
  assert abs(infer['speedup_of_ours_inference']['litert_fp32'] -
             rates['ours_inference'] / rates['litert_fp32']) < 1e-2
  assert train['seconds_per_step'] == {}  # LiteRT files do not train.
  (record,) = run_script('litert.py', '--smoke', '--spacetobatch')
  assert record['benchmark'] == 'litert_segmentation'
  kinds = {'litert_fp32', 'litert_dynamic', 'litert_int8',
           'litert_fp32_spacetobatch'}
  assert set(record['seconds_per_image']) == kinds | {
      'tensorflow', 'tensorflow_spacetobatch'}
  assert set(record['tflite_mb']) == set(record['peak_rss_alone_gb']) == kinds
  assert set(record['speedup_over_tensorflow']) == kinds | {
      'tensorflow_spacetobatch'}
  # Float32 gives TensorFlow's class map, with or without atrous_to_dilated;
  # every file runs.
  agreement = record['class_map_agreement_with_tensorflow']
  assert min(agreement['litert_fp32'], agreement['litert_fp32_spacetobatch'],
             agreement['tensorflow_spacetobatch']) >= 0.9999
  assert all(0 < a <= 1 for a in
             record['class_map_agreement_with_tensorflow'].values())
  assert record['threads'] == len(os.sched_getaffinity(0))
