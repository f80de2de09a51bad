"""Peak training memory as depth grows: plain vs memory-efficient DenseNet-BC.

DenseNet-BC with growth rate 12 on 32x32 images, batch 64, depths 100, 190
and 250 (16, 31 and 41 units per dense block): ours plain and
memory-efficient and, when PyTorch is importable, torchvision's DenseNet with
the same blocks (3x3 stem, `memory_efficient` False and True). Each (depth,
implementation) trains in its own process (`train_step.py --worker`), so its
peak RSS is its own. The last line gives, per depth, the peaks, the
memory-efficient / plain ratio, each peak relative to the smallest depth's,
and the step's own memory (peak minus RSS before the first step).

  python benchmarks/memory_vs_depth.py
  python benchmarks/memory_vs_depth.py --onednn    # TF_ENABLE_ONEDNN_OPTS=1
  python benchmarks/memory_vs_depth.py --smoke     # depth 10, batch 2
"""

import argparse

import common
import train_step

IMPLEMENTATIONS = ('plain', 'memory_efficient') + train_step.TORCH


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--depths', type=int, nargs='+', default=[100, 190, 250])
  parser.add_argument('--growth-rate', type=int, default=12)
  parser.add_argument('--batch-size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=2)
  parser.add_argument(
      '--implementations', nargs='+', choices=IMPLEMENTATIONS,
      default=[name for name in IMPLEMENTATIONS
               if name not in train_step.TORCH or
               train_step.torch_available()])
  parser.add_argument('--onednn', action='store_true',
                      help='TensorFlow workers with TF_ENABLE_ONEDNN_OPTS=1')
  parser.add_argument('--smoke', action='store_true',
                      help='depth 10, batch 2, 1 step, ours only (tests)')
  args = parser.parse_args(argv)
  if args.smoke:
    args.depths, args.batch_size, args.steps = [10], 2, 1
    args.implementations = ['plain', 'memory_efficient']
  args.image_size = 32
  return args


def main(argv=None):
  args = parse_args(argv)
  records = {}
  for depth in args.depths:
    for implementation in args.implementations:
      (record,) = common.run_worker(
          'train_step.py',
          train_step.worker_args(args, implementation, args.batch_size,
                                 cifar_depth=depth),
          env=train_step.worker_env(args, implementation))
      records.setdefault(implementation, {})[depth] = record
  smallest = min(args.depths)
  rows = []
  for depth in args.depths:
    by_name = {name: records[name][depth] for name in args.implementations}
    row = {
        'depth': depth,
        'units_per_block': (depth - 4) // 6,
        'peak_rss_gb': {name: r['peak_rss_gb'] for name, r in by_name.items()},
        'rss_before_first_step_gb': {
            name: r['rss_before_first_step_gb']
            for name, r in by_name.items()},
        'peak_rss_above_smallest_depth_gb': {
            name: round(r['peak_rss_gb'] -
                        records[name][smallest]['peak_rss_gb'], 3)
            for name, r in by_name.items()},
        'peak_rss_to_smallest_depth': {
            name: round(r['peak_rss_gb'] /
                        records[name][smallest]['peak_rss_gb'], 3)
            for name, r in by_name.items()},
        'seconds_per_step': {name: r['seconds_per_step']
                             for name, r in by_name.items()},
        'setup_seconds': {name: r['setup_seconds']
                          for name, r in by_name.items()},
    }
    if 'plain' in by_name and 'memory_efficient' in by_name:
      row['peak_rss_ratio'] = round(by_name['memory_efficient']['peak_rss_gb'] /
                                    by_name['plain']['peak_rss_gb'], 3)
    rows.append(row)
  return common.emit({
      'benchmark': 'memory_vs_depth',
      'growth_rate': args.growth_rate,
      'batch_size': args.batch_size,
      'image_size': args.image_size,
      'onednn': args.onednn,
      'rows': rows,
  })


if __name__ == '__main__':
  main()
