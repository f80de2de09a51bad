"""Graceful stop: SIGTERM and SIGINT become a request to stop between steps.

Schedulers, `docker stop` and preemptible machines send SIGTERM; Ctrl-C sends
SIGINT. While `stop_on_signals()` is active (`densenet.training.Trainer.train`
enters it; `densenet.classification.train` around its whole loop), either
signal only records its name; the training loop looks at the request between
steps, never in the middle of a step or of a checkpoint write, saves the
checkpoint of the step reached and raises `Interrupted`:

    from densenet.training import signals
    with signals.stop_on_signals() as request:
      for step in range(num_steps):
        if request.signal_name:
          save(step)
          raise signals.Interrupted(request.signal_name, step, path)
        train_step()

A second signal while stopping (a second Ctrl-C during the save) changes
nothing: the save completes. SIGKILL cannot be caught; the checkpoint writer
is atomic, so the previous checkpoint stays the latest.

TensorFlow-free (the command-line layer imports it before TensorFlow).
"""

import contextlib
import signal
import threading

# The signals a stop request catches, by name.
STOP_SIGNALS = ('SIGINT', 'SIGTERM')


class Interrupted(KeyboardInterrupt):
  """Training stopped by a signal, after saving the step it had reached.

  A `KeyboardInterrupt` (as Ctrl-C has always been), so `except Exception`
  does not swallow it; the command-line layer turns it into one line and
  exit status 128 + the signal number (SIGINT 130, SIGTERM 143).

  Attributes:
    signal_name: 'SIGTERM', 'SIGINT', or None when another worker of a
      multi-worker run received the signal.
    step: The global step reached (and saved).
    checkpoint: The checkpoint prefix of that step, or None if there is
      none (stopped before the first step of a fresh run).
  """

  def __init__(self, signal_name, step, checkpoint):
    super().__init__(signal_name, step, checkpoint)  # Pickles as such.
    self.signal_name = signal_name
    self.step = step
    self.checkpoint = checkpoint

  def __str__(self):
    by = self.signal_name or 'a signal to another worker'
    if self.checkpoint is None:
      return ('stopped by %s at step %d, before the first checkpoint; run '
              'the same command to start again.' % (by, self.step))
    return ('stopped by %s at step %d; checkpoint %s saved; run the same '
            'command to resume.' % (by, self.step, self.checkpoint))

  @property
  def signal_number(self):
    """The signal's number (SIGINT when another worker got it)."""
    return int(getattr(signal, self.signal_name or 'SIGINT'))


class StopRequest(object):
  """What a `stop_on_signals` scope caught.

  Attributes:
    signal_name: The name of the first signal received ('SIGTERM',
      'SIGINT'), or None.
    count: Signals received (a second Ctrl-C while saving: 2).
    active: Whether the handlers are installed (only in the main thread).
  """

  def __init__(self, active=False):
    self.signal_name = None
    self.count = 0
    self.active = active

  def handle(self, signum, frame):
    """The signal handler: records the signal, nothing else (it may run at
    any bytecode of the main thread, e.g. in the middle of a save)."""
    del frame
    self.count += 1
    if self.signal_name is None:
      self.signal_name = signal.Signals(signum).name


_current = []  # The active request of the main thread (at most one).


@contextlib.contextmanager
def stop_on_signals():
  """Within it, SIGINT and SIGTERM set `request.signal_name`; yields request.

  Installed only in the main thread (where Python runs signal handlers);
  elsewhere the request stays empty and the signals keep their behaviour.
  Nested scopes share the outermost one's request. The previous handlers
  are restored on exit, also when an exception escapes (a handler that was
  not installed from Python, which `signal.getsignal` reports as None, comes
  back as the default action).
  """
  if _current:
    yield _current[-1]
    return
  if threading.current_thread() is not threading.main_thread():
    yield StopRequest(active=False)
    return
  request = StopRequest(active=True)
  previous = {}
  try:
    for name in STOP_SIGNALS:
      number = getattr(signal, name)
      previous[number] = signal.getsignal(number)
      signal.signal(number, request.handle)
    _current.append(request)
    yield request
  finally:
    if _current and _current[-1] is request:
      _current.pop()
    for number, handler in previous.items():
      signal.signal(number, signal.SIG_DFL if handler is None else handler)
