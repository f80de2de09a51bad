"""The layers of a DenseNet (`densenet_utils` is their tf-slim face).

  blocks:      `Block`, dense units, transitions, `stack_blocks_dense` (the
               stride / rate bookkeeping), `densenet_arg_scope`.
  batch_norm:  the fused, distribution-aware batch norm with slim's names.
  recompute:   recomputation in the backward pass (memory-efficient units).
  root:        the stem (`root_block`).
  inputs:      what the constructors accept as images.
"""
