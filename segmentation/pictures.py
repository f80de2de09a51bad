"""Pictures people can read: prediction panels with a legend, IoU bar charts.

Pillow and numpy only. Colours are the Pascal VOC palette of the mask PNGs
(`labels_lib.voc_palette`), so a picture, its mask and its legend agree.

    from segmentation import pictures
    picture = pictures.prediction_picture(image, prediction, class_names,
                                          label=label, title='a.jpg')
    picture.save('a_overlay.png')
    pictures.iou_chart(results['per_class_iou'], title='step 1000').save(
        'per_class_iou.png')

`prediction_picture` puts side by side, each at the image's own size: the
image, the ground truth (when given) and the prediction, the latter two as
outline overlays (`outline_overlay`: the image muted towards grey, each
class region filled lightly with its colour and traced by a class-coloured
contour inside a contrasting halo, so regions stay readable on busy
images), with a title above each panel and a legend of the classes shown.
"""

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from segmentation.data import labels as labels_lib
from segmentation.options import IGNORE_LABEL

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
GRID = (205, 205, 205)
IGNORE_NAME = 'ignore'


def font(size=13):
  """Pillow's built-in scalable font at `size` pixels."""
  return ImageFont.load_default(size=size)


def contours(mask, thickness=2):
  """`[h, w]` bool: pixels of non-background regions within `thickness`
  pixels (4-neighbourhood steps) of a pixel of another class.

  The image border is not a contour: a region cut by it stays open there.
  """
  mask = np.asarray(mask)
  if thickness < 1:
    raise ValueError('thickness must be >= 1, got %r.' % (thickness,))
  padded = np.pad(mask, thickness, mode='edge')
  height, width = mask.shape
  edge = np.zeros(mask.shape, bool)
  for step in range(1, thickness + 1):
    for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
      shifted = padded[thickness + dy:thickness + dy + height,
                       thickness + dx:thickness + dx + width]
      edge |= shifted != mask
  return edge & (mask != 0)


def _max_filter(values):
  """The 3x3 maximum of `[h, w]` values (a dilation for bool masks)."""
  padded = np.pad(values, 1)
  out = np.zeros_like(values)
  height, width = values.shape
  for dy in range(3):
    for dx in range(3):
      out = np.maximum(out, padded[dy:dy + height, dx:dx + width])
  return out


def _luminance(colors):
  colors = np.asarray(colors, np.float32)
  return colors @ np.array([0.299, 0.587, 0.114], np.float32)


def class_colors(num_colors=256):
  """`[num_colors, 3]` uint8: the VOC palette (255, the ignore label, is
  white)."""
  return labels_lib.voc_palette(256)[:num_colors]


def outline_overlay(image, mask, fill_alpha=0.35, muted=0.4, thickness=2,
                    ignore_label=IGNORE_LABEL):
  """The image with class regions lightly filled and traced by contours.

  Args:
    image: `[h, w, 3]` uint8.
    mask: `[h, w]` class ids (0 = background: neither filled nor traced;
      `ignore_label`: filled white, not traced).
    fill_alpha: Opacity of the class colour inside a region.
    muted: How far the image is blended towards its grey (0: not at all),
      so the colours stand out on colourful images.
    thickness: Contour width in pixels (inside the region).
    ignore_label: The label drawn as 'ignore'.

  Returns:
    `[h, w, 3]` uint8.
  """
  image = np.asarray(image)
  mask = np.asarray(mask)
  if image.shape[:2] != mask.shape or image.ndim != 3:
    raise ValueError('image must be [h, w, 3] and mask [h, w] of the same '
                     'size, got %s and %s.' % (image.shape, mask.shape))
  colors = class_colors().astype(np.float32)
  out = image.astype(np.float32)
  grey = _luminance(out)[..., None]
  out = (1 - muted) * out + muted * grey
  filled = mask != 0
  alpha = np.where(mask == ignore_label, 0.6, fill_alpha)[..., None]
  out = np.where(filled[..., None], (1 - alpha) * out + alpha * colors[mask],
                 out)
  traced = mask.copy()
  traced[mask == ignore_label] = 0
  edge = contours(traced, thickness)
  # The halo: one pixel around the contour, white around dark colours and
  # black around light ones, keeps the contour visible on any background.
  halo = _max_filter(edge) & ~edge
  near = _max_filter(np.where(edge, traced, 0))  # The contour's class.
  dark = _luminance(colors[near]) < 110
  out[halo] = np.where(dark[halo][:, None], 255.0, 0.0)
  out[edge] = colors[traced[edge]]
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _legend_items(class_names, masks, ignore_label):
  present = set()
  for mask in masks:
    present.update(int(v) for v in np.unique(mask))
  items = [(class_names[i] if i < len(class_names) else 'class_%d' % i, i)
           for i in sorted(present) if i not in (0, ignore_label)]
  if ignore_label in present:
    items.append((IGNORE_NAME, ignore_label))
  return items


def _draw_legend(draw, items, left, top, width, text_font, swatch):
  """Draws wrapped `(name, class id)` swatches; returns the bottom y."""
  colors = class_colors()
  x, y = left, top
  row = max(swatch, text_font.getbbox('Ag')[3]) + 4
  for name, class_id in items:
    item_width = swatch + 4 + int(draw.textlength(name, font=text_font)) + 12
    if x > left and x + item_width > left + width:
      x, y = left, y + row
    color = tuple(int(c) for c in colors[class_id])
    draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=color,
                   outline=TEXT)
    draw.text((x + swatch + 4, y + swatch // 2), name, fill=TEXT,
              font=text_font, anchor='lm')
    x += item_width
  return y + row


def legend_height(items, width, text_font, swatch):
  """The height `_draw_legend` needs for `items` in `width` pixels."""
  scratch = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  return _draw_legend(scratch, items, 0, 0, width, text_font, swatch)


class _Layout(object):
  """Where `prediction_picture` puts things for a `width` x `height` image."""

  def __init__(self, width, height, num_panels, has_title, gap=6):
    self.size = int(np.clip(min(height, width) / 10, 11, 18))
    self.font = font(self.size)
    self.line = self.font.getbbox('Ag')[3] + 4
    self.gap = gap
    self.width, self.height = width, height
    self.canvas_width = gap + num_panels * (width + gap)
    self.title_top = gap
    self.panel_title_top = gap + (self.line if has_title else 0)
    self.panel_top = self.panel_title_top + self.line
    self.legend_top = self.panel_top + height + gap

  def panel_box(self, index):
    left = self.gap + index * (self.width + self.gap)
    return (left, self.panel_top, left + self.width,
            self.panel_top + self.height)


def panel_box(image_size, num_panels, index, has_title=False):
  """`(left, top, right, bottom)` of panel `index` of a `prediction_picture`
  of an image of `image_size` (width, height) with `num_panels` panels."""
  return _Layout(image_size[0], image_size[1], num_panels,
                 has_title).panel_box(index)


def prediction_picture(image, prediction, class_names, label=None,
                       title=None, ignore_label=IGNORE_LABEL):
  """Image | ground truth (if `label`) | prediction, titled, with a legend.

  Args:
    image: `[h, w, 3]` uint8.
    prediction: `[h, w]` predicted class ids.
    class_names: Names of the classes (index = class id).
    label: Optional `[h, w]` ground-truth class ids (`ignore_label` allowed).
    title: Optional line above the panels (e.g. the file name).
    ignore_label: The label shown as 'ignore'.

  Returns:
    An RGB `PIL.Image`: the panels, each `w` x `h` at the image's own size
    (`panel_box` gives where), side by side below an optional title line and
    the panel titles, above a legend of the classes in the label or the
    prediction (background, class 0, is neither coloured nor listed).
  """
  image = np.asarray(image, np.uint8)
  prediction = np.asarray(prediction)
  height, width = image.shape[:2]
  if prediction.shape != (height, width):
    raise ValueError('prediction must be [%d, %d] like the image, got %s.' %
                     (height, width, prediction.shape))
  panels = [('image', image)]
  masks = [prediction]
  if label is not None:
    label = np.asarray(label)
    if label.shape != (height, width):
      raise ValueError('label must be [%d, %d] like the image, got %s.' %
                       (height, width, label.shape))
    panels.append(('ground truth', outline_overlay(image, label,
                                                   ignore_label=ignore_label)))
    masks.insert(0, label)
  panels.append(('prediction', outline_overlay(image, prediction,
                                               ignore_label=ignore_label)))
  layout = _Layout(width, height, len(panels), bool(title))
  items = _legend_items(class_names, masks, ignore_label)
  inner_width = layout.canvas_width - 2 * layout.gap
  legend = legend_height(items, inner_width, layout.font, layout.size)
  canvas = Image.new('RGB', (layout.canvas_width,
                             layout.legend_top + legend + layout.gap),
                     BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((layout.gap, layout.title_top), title, fill=TEXT,
              font=layout.font)
  for i, (name, pixels) in enumerate(panels):
    left, top, _, _ = layout.panel_box(i)
    draw.text((left + width // 2, layout.panel_title_top), name, fill=TEXT,
              font=layout.font, anchor='ma')
    canvas.paste(Image.fromarray(pixels), (left, top))
  _draw_legend(draw, items, layout.gap, layout.legend_top, inner_width,
               layout.font, layout.size)
  return canvas


def iou_chart(per_class_iou, title=None, mean_iou=None, bar_width=300):
  """A horizontal bar chart of per-class IoU.

  Args:
    per_class_iou: {class name: IoU in [0, 1] or None (absent)}, in class id
      order (as `ConfusionMatrix.results()['per_class_iou']`).
    title: Optional title line.
    mean_iou: Optional mean IoU, drawn as a dashed line and written.
    bar_width: Pixels of an IoU of 1.

  Returns:
    An RGB `PIL.Image`, one row per class.
  """
  names = list(per_class_iou)
  text_font = font(13)
  small = font(11)
  row = 20
  measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  name_width = max([int(measure.textlength(n, font=text_font))
                    for n in names] + [40])
  left = 10 + name_width + 8
  top = 10 + (24 if title else 0) + (18 if mean_iou is not None else 0)
  title_font = font(15)
  width = max(left + bar_width + 60, 20 + int(measure.textlength(
      title or '', font=title_font)))
  height = top + row * len(names) + 28
  canvas = Image.new('RGB', (width, height), BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((10, 10), title, fill=TEXT, font=title_font)
  if mean_iou is not None:
    draw.text((10, top - 18), 'mean IoU %.4f (dashed line)' % mean_iou,
              fill=TEXT, font=text_font)
  bottom = top + row * len(names)
  for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
    x = left + int(round(tick * bar_width))
    draw.line([(x, top - 2), (x, bottom)], fill=GRID)
    draw.text((x, bottom + 4), '%g' % tick, fill=TEXT, font=small,
              anchor='ma')
  if mean_iou is not None:
    x = left + int(round(mean_iou * bar_width))
    for y in range(top - 2, bottom, 6):
      draw.line([(x, y), (x, min(y + 3, bottom))], fill=(200, 30, 30),
                width=2)
  colors = class_colors()
  for i, name in enumerate(names):
    y = top + i * row
    draw.text((left - 8, y + row // 2), name, fill=TEXT, font=text_font,
              anchor='rm')
    value = per_class_iou[name]
    if value is None:
      draw.text((left + 4, y + row // 2), 'absent', fill=(120, 120, 120),
                font=text_font, anchor='lm')
      continue
    end = left + int(round(float(value) * bar_width))
    color = tuple(int(c) for c in colors[i])
    if end > left:
      draw.rectangle([left, y + 3, end, y + row - 4], fill=color,
                     outline=TEXT)
    position = (end + 4, y + row // 2)
    draw.rectangle(draw.textbbox(position, '%.3f' % value, font=text_font,
                                 anchor='lm'), fill=BACKGROUND)
    draw.text(position, '%.3f' % value, fill=TEXT, font=text_font,
              anchor='lm')
  return canvas


def save_prediction_picture(path, image, prediction, class_names, label=None,
                            title=None):
  """Writes `prediction_picture(...)` as a PNG; returns `path`."""
  prediction_picture(image, prediction, class_names, label=label,
                     title=title).save(path)
  return path
