"""The layers of a DenseNet (`densenet_utils` is their tf-slim face).

  blocks:      `Block`, dense units, transitions, `densenet_arg_scope`.
  stack:       `stack_blocks_dense` (the stride / rate bookkeeping),
               `minimum_input_size`.
  batch_norm:  the fused, distribution-aware batch norm with slim's names.
  recompute:   recomputation in the backward pass (memory-efficient units).
  root:        the stem (`root_block`).
  inputs:      what the constructors accept as images.
"""
