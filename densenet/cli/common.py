"""What both console scripts (`densenet`, `segmentation`) share.

Imports no TensorFlow: parsing arguments, `--help` and `--version` never load
it, and most mistakes are reported before it loads.

Commands are added by registrars, `add_<name>_parser(subparsers)`, that call
`add_command`; the command's function receives the parsed
`argparse.Namespace` and returns the exit status (None means 0). `main` runs
a parser's command and turns every error into one line on stderr and an exit
status, by one table:

    0    success
    1    runtime failure (an OSError while writing, a NaN loss, a TensorFlow
         error such as DataLossError, any other exception)
    2    bad usage: argparse errors, `UsageError`, ValueError,
         FileNotFoundError, NotADirectoryError, TensorFlow's NotFoundError
    130  interrupted (Ctrl-C: SIGINT)
    143  terminated (SIGTERM), after training saved its checkpoint

Training commands stop on SIGTERM or SIGINT between steps, save the step
reached and end with one line (`densenet.training.signals.Interrupted`), e.g.
`segmentation train: stopped by SIGTERM at step 37; checkpoint
runs/seg/model.ckpt-37 saved; run the same command to resume.`

`--verbose` shows tracebacks and TensorFlow's logs. With `--json`, stdout
holds one strict JSON document (`print_json`) and nothing else.
"""

import argparse
import contextlib
import functools
import json
import math
import sys
import traceback

import densenet
from densenet._env import runtime
from densenet.training import signals

EXIT_SUCCESS = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(Exception):
  """A mistake in the command line found after parsing (exit status 2)."""


# Error kind -> exit status; the first matching row wins. TensorFlow's error
# classes are named by their module and name: this module must not import it.
# A stop on a signal (`signals.Interrupted`) exits with 128 + the signal's
# number, the shell's convention: SIGINT 130, SIGTERM 143.
EXIT_STATUSES = (
    ((KeyboardInterrupt,), EXIT_INTERRUPTED),
    ((UsageError, ValueError, FileNotFoundError, NotADirectoryError,
      'tensorflow.errors.NotFoundError'), EXIT_USAGE),
    ((Exception,), EXIT_FAILURE),
)


def _error_classes(kinds):
  """The classes of `kinds`; TensorFlow's only when it is loaded."""
  classes = []
  for kind in kinds:
    if isinstance(kind, str):  # 'tensorflow.errors.NotFoundError'
      if 'tensorflow' not in sys.modules:
        continue
      kind = functools.reduce(getattr, kind.split('.')[1:],
                              sys.modules['tensorflow'])
    classes.append(kind)
  return tuple(classes)


def exit_status(error):
  """The exit status for an exception raised by a command (see the table)."""
  if isinstance(error, signals.Interrupted):
    return 128 + error.signal_number
  for kinds, status in EXIT_STATUSES:
    if isinstance(error, _error_classes(kinds)):
      return status
  return EXIT_FAILURE


_ASSERTION = 'assertion failed:'


def error_message(error):
  """One line saying what went wrong (the first line of a longer message)."""
  if isinstance(error, signals.Interrupted):
    return str(error)
  if isinstance(error, KeyboardInterrupt):
    return 'interrupted.'
  # TensorFlow's OpError: `message` without the op's creation traceback.
  message = getattr(error, 'message', None)
  if not isinstance(message, str):
    message = str(error)
  lines = message.strip().splitlines() or ['']
  # A failed tf.debugging assertion (e.g. images too small for the network):
  # its own text, not TensorFlow's 'Graph execution error:' header.
  lines = [line.strip() for line in lines
           if line.strip().startswith(_ASSERTION)][:1] + lines
  if lines[0].startswith(_ASSERTION):
    lines[0] = lines[0][len(_ASSERTION):].strip()
  message = lines[0] + (' (more with --verbose)' if len(lines) > 1 else '')
  if exit_status(error) == EXIT_FAILURE and not isinstance(error, OSError):
    # Not a user's mistake, nor a file system failure: say what it is.
    message = type(error).__name__ + (': ' + message if lines[0] else '')
  return message or type(error).__name__


def finite(data):
  """`data` with NaN and infinite floats (an undefined metric, e.g. the IoU
  of a class absent from the images and the predictions) as None, numpy
  scalars as Python numbers and tuples as lists: what strict JSON holds."""
  if isinstance(data, dict):
    return {key: finite(value) for key, value in data.items()}
  if isinstance(data, (list, tuple)):
    return [finite(value) for value in data]
  item = getattr(data, 'item', None)  # numpy scalars.
  if item is not None and getattr(data, 'shape', None) == ():
    data = item()
  if isinstance(data, float) and not math.isfinite(data):
    return None
  return data


def json_text(data, sort_keys=False):
  """`data` as one strict JSON document (`finite`; no NaN or Infinity,
  which `json.loads` of other languages refuse)."""
  return json.dumps(finite(data), indent=2, sort_keys=sort_keys,
                    allow_nan=False)


_json_stdout = []  # The real stdout while a --json command runs.


def print_json(data, sort_keys=False):
  """Prints `json_text(data)` on stdout: the only thing a `--json` command
  prints there (`main` sends everything else on stdout to stderr)."""
  out = _json_stdout[-1] if _json_stdout else sys.stdout
  print(json_text(data, sort_keys), file=out, flush=True)


@contextlib.contextmanager
def _json_output(active):
  """While a `--json` command runs, stdout goes to stderr (the library's log
  lines too); `print_json` writes to the real stdout."""
  if not active:
    yield
    return
  _json_stdout.append(sys.stdout)
  try:
    with contextlib.redirect_stdout(sys.stderr):
      yield
  finally:
    _json_stdout.pop()


def report_unreadable(command, errors):
  """Prints `<command>: cannot read PATH: MESSAGE` on stderr for each of
  `errors` ({path: message}) and returns the exit status: 1 if there were
  any (the other files were still processed), else 0."""
  for path, message in errors.items():
    print('%s: cannot read %s: %s' % (command, path, message),
          file=sys.stderr)
  return EXIT_FAILURE if errors else EXIT_SUCCESS


# ---------------------------------------------------------------------------
# Parsers


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Shows every option's default, unless None or False (a flag)."""

  def _get_help_string(self, action):
    if (action.default is None or action.default is False
        or action.default == argparse.SUPPRESS):
      return action.help
    return super()._get_help_string(action)


def build_parser(prog, description, registrars):
  """The parser of a console script: one sub-command per registrar."""
  parser = argparse.ArgumentParser(prog=prog, description=description,
                                   formatter_class=HelpFormatter)
  parser.add_argument('--version', action='version',
                      version='%(prog)s ' + densenet.__version__)
  _add_verbose(parser, default=False)
  subparsers = parser.add_subparsers(dest='command', metavar='COMMAND')
  subparsers.required = True
  for registrar in registrars:
    registrar(subparsers)
  return parser


def _add_verbose(parser, default):
  parser.add_argument('--verbose', action='store_true', default=default,
                      help='Show tracebacks and TensorFlow\'s log messages.')


def add_command(subparsers, name, func, help, description=None):  # pylint: disable=redefined-builtin
  """Adds sub-command `name` running `func(args)`; returns its parser."""
  parser = subparsers.add_parser(name, help=help,
                                 description=description or help,
                                 formatter_class=HelpFormatter)
  # SUPPRESS: `--verbose` before the command is not overwritten by this one.
  _add_verbose(parser, default=argparse.SUPPRESS)
  parser.set_defaults(func=func)
  return parser


def add_renamed_argument(parser, name, old_names, required=False, **kwargs):
  """`parser.add_argument(name, **kwargs)`, also taking `old_names`: the
  0.1 spellings of the option, kept for one release and not shown by
  `--help`. `required` means one of the spellings (checked by `main`).

  Returns:
    The action of `name`.
  """
  action = parser.add_argument(name, **kwargs)
  action.required_any_spelling = required
  for old in old_names:
    parser.add_argument(old, **dict(kwargs, dest=action.dest,
                                    help=argparse.SUPPRESS))
  return action


def main(parser, argv=None):
  """Parses `argv`, runs the command; returns the exit status.

  Quiets TensorFlow (unless --verbose) before the command loads it, and
  prints any error as one line `<prog> <command>: error: <message>`.
  """
  args, unknown = parser.parse_known_args(argv)
  command_parser = _command_parser(parser, args.command)
  if unknown:  # Reported with the usage of the command, not of the program.
    command_parser.error('unrecognized arguments: %s' % ' '.join(unknown))
  missing = [action.option_strings[0] for action in command_parser._actions  # pylint: disable=protected-access
             if getattr(action, 'required_any_spelling', False) and
             getattr(args, action.dest, None) is None]
  if missing:
    command_parser.error('the following arguments are required: %s' %
                         ', '.join(missing))
  runtime.configure(verbose=args.verbose)
  try:
    with _json_output(getattr(args, 'json', False)):
      status = args.func(args)
  except (Exception, KeyboardInterrupt) as error:  # pylint: disable=broad-except
    if args.verbose:
      traceback.print_exc()
    # A stop on a signal, with its checkpoint saved, is not an error.
    kind = '' if isinstance(error, signals.Interrupted) else 'error: '
    print('%s %s: %s%s' % (parser.prog, args.command, kind,
                           error_message(error)), file=sys.stderr)
    return exit_status(error)
  return EXIT_SUCCESS if status is None else status


def _command_parser(parser, command):
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      return action.choices[command]
  return parser


# ---------------------------------------------------------------------------
# Argument types: each raises argparse.ArgumentTypeError (exit status 2).
