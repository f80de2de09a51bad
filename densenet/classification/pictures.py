"""A classifier's confusion matrix as a picture people can read (Pillow only).

    from densenet.classification import pictures
    pictures.confusion_picture([[9, 1], [0, 10]], ['cat', 'dog'],
                               title='test: top-1 accuracy 95.00%').save('c.png')

Rows are the true classes, columns the predicted ones. Each cell is shaded by
its share of its row, from white (0) to dark blue (1), so the diagonal reads
as each class's accuracy, and shows its count when the cells are big enough
to hold it (up to 24 classes).
"""

import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
GRID = (205, 205, 205)
FULL = (8, 48, 107)  # The colour of a whole row in one cell.
_GAP = 10


def font(size=13):
  """Pillow's built-in scalable font at `size` pixels."""
  return ImageFont.load_default(size=size)


def cell_color(fraction):
  """The RGB colour of a cell holding `fraction` (in [0, 1]) of its row."""
  fraction = float(np.clip(fraction, 0.0, 1.0))
  return tuple(int(round(b + fraction * (f - b)))
               for b, f in zip(BACKGROUND, FULL))


class _Layout(object):
  """Where `confusion_picture` puts things for `class_names`."""

  def __init__(self, class_names, title):
    count = len(class_names)
    self.cell = 36 if count <= 20 else max(6, 720 // count)
    self.font = font(int(np.clip(self.cell - 4, 6, 13)))
    self.small = font(11)
    measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    self.label_width = max([int(measure.textlength(n, font=self.font))
                            for n in class_names] + [10]) + 8
    self.line = self.font.getbbox('Ag')[3] + 6
    self.title_top = _GAP
    self.caption_top = _GAP + (self.line if title else 0)
    # Column labels are written upwards above their columns.
    self.left = _GAP + self.line + self.label_width
    self.top = self.caption_top + self.line + self.label_width
    self.width = max(self.left + count * self.cell + _GAP,
                     2 * _GAP + int(measure.textlength(title or '',
                                                       font=self.font)))
    self.height = self.top + count * self.cell + _GAP

  def cell_box(self, row, column):
    left = self.left + column * self.cell
    top = self.top + row * self.cell
    return left, top, left + self.cell, top + self.cell


def cell_box(class_names, row, column, title=None):
  """`(left, top, right, bottom)` of a cell of `confusion_picture(...,
  class_names, title)` (right and bottom exclusive)."""
  return _Layout(class_names, title).cell_box(row, column)


def confusion_picture(matrix, class_names, title=None):
  """The confusion matrix as a shaded grid with counts and class names.

  Args:
    matrix: `[classes, classes]` counts: `matrix[t][p]` images of true
      class t predicted as p.
    class_names: The name of each row (and column).
    title: Optional line above the grid.

  Returns:
    An RGB `PIL.Image`; `cell_box` says where each cell is.

  Raises:
    ValueError: If `matrix` is not square with one row per class name.
  """
  matrix = np.asarray(matrix)
  count = len(class_names)
  if matrix.shape != (count, count):
    raise ValueError('matrix must be [%d, %d] (one row and column per class '
                     'name), got shape %s.' % (count, count, matrix.shape))
  layout = _Layout(class_names, title)
  canvas = Image.new('RGB', (layout.width, layout.height), BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((_GAP, layout.title_top), title, fill=TEXT, font=layout.font)
  grid_width = count * layout.cell
  draw.text((layout.left + grid_width // 2, layout.caption_top),
            'predicted class', fill=TEXT, font=layout.font, anchor='ma')
  caption = _upwards('true class', layout.font, layout.line)
  canvas.paste(caption, (_GAP, layout.top + max(
      0, (count * layout.cell - caption.size[1]) // 2)))
  totals = matrix.sum(axis=1)
  for row in range(count):
    left, top, _, _ = layout.cell_box(row, 0)
    draw.text((left - 6, top + layout.cell // 2), class_names[row], fill=TEXT,
              font=layout.font, anchor='rm')
    label = _upwards(class_names[row], layout.font, layout.cell)
    column_left, _, _, _ = layout.cell_box(0, row)
    canvas.paste(label, (column_left, layout.top - 6 - label.size[1]))
    for column in range(count):
      fraction = matrix[row, column] / totals[row] if totals[row] else 0.0
      box = layout.cell_box(row, column)
      color = cell_color(fraction)
      draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=color,
                     outline=GRID)
      if layout.cell >= 24 and matrix[row, column]:
        draw.text(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2),
                  str(int(matrix[row, column])), font=layout.small,
                  fill=BACKGROUND if fraction > 0.5 else TEXT, anchor='mm')
  return canvas


def _upwards(text, text_font, height):
  """`text` written bottom to top, in a box `height` pixels wide."""
  measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  width = int(measure.textlength(text, font=text_font)) + 2
  strip = Image.new('RGB', (width, height), BACKGROUND)
  ImageDraw.Draw(strip).text((0, height // 2), text, fill=TEXT,
                             font=text_font, anchor='lm')
  return strip.rotate(90, expand=True)


def save_confusion_picture(path, matrix, class_names, title=None):
  """Writes `confusion_picture(...)` as a PNG, atomically (a temporary file
  renamed into place); returns `path`."""
  directory, name = os.path.split(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  temporary = os.path.join(directory, '.tmp-' + name)
  try:
    confusion_picture(matrix, class_names, title).save(temporary,
                                                       format='PNG')
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)
  return path
