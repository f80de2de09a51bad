"""The environment: what the project needs from Python and TensorFlow itself.

  compat:   the only module touching TensorFlow / tf_keras / tf-slim internals
            (tf-slim 1.1.0 on current TensorFlow).
  runtime:  what must be decided before TensorFlow loads (oneDNN, quiet
            logs); no TensorFlow import.
  lazy:     lazy public names of the packages, old module paths.
"""
