"""Peak training memory as depth grows: plain vs memory-efficient DenseNet-BC.

DenseNet-BC with growth rate 12 on 32x32 images, batch 64, depths 100, 190
and 250 (16, 31 and 41 units per dense block). Each (depth, implementation)
trains in its own process (`train_step.py --worker`), so its peak RSS is its
own. The last line gives, per depth, both peaks, the ratio, and the growth of
each above the smallest depth.

  python benchmarks/memory_vs_depth.py
  python benchmarks/memory_vs_depth.py --smoke     # depth 10, batch 2
"""

import argparse

import common
import train_step


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--depths', type=int, nargs='+', default=[100, 190, 250])
  parser.add_argument('--growth-rate', type=int, default=12)
  parser.add_argument('--batch-size', type=int, default=64)
  parser.add_argument('--steps', type=int, default=2)
  parser.add_argument('--smoke', action='store_true',
                      help='depth 10, batch 2, 1 step (tests)')
  args = parser.parse_args(argv)
  if args.smoke:
    args.depths, args.batch_size, args.steps = [10], 2, 1
  args.image_size = 32
  return args


def main(argv=None):
  args = parse_args(argv)
  peaks = {}
  for depth in args.depths:
    for implementation in ('plain', 'memory_efficient'):
      (record,) = common.run_worker('train_step.py', train_step.worker_args(
          args, implementation, args.batch_size, cifar_depth=depth))
      peaks.setdefault(implementation, {})[depth] = record
  smallest = min(args.depths)
  rows = []
  for depth in args.depths:
    plain = peaks['plain'][depth]
    efficient = peaks['memory_efficient'][depth]
    rows.append({
        'depth': depth,
        'peak_rss_gb': {'plain': plain['peak_rss_gb'],
                        'memory_efficient': efficient['peak_rss_gb']},
        'peak_rss_ratio': round(efficient['peak_rss_gb'] /
                                plain['peak_rss_gb'], 3),
        'peak_rss_above_smallest_depth_gb': {
            name: round(peaks[name][depth]['peak_rss_gb'] -
                        peaks[name][smallest]['peak_rss_gb'], 3)
            for name in ('plain', 'memory_efficient')},
        'seconds_per_step': {'plain': plain['seconds_per_step'],
                             'memory_efficient': efficient['seconds_per_step']},
    })
  return common.emit({
      'benchmark': 'memory_vs_depth',
      'growth_rate': args.growth_rate,
      'batch_size': args.batch_size,
      'image_size': args.image_size,
      'rows': rows,
  })


if __name__ == '__main__':
  main()
