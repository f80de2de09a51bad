"""Tests for image decoding and geometry in densenet.preprocessing."""

import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from densenet import preprocessing


def _coordinates(height, width):
  """RGB image whose red is x mod 256, green y mod 256, blue 7."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x % 256, y % 256, np.full_like(x, 7)], -1).astype(np.uint8)


def test_exif_orientation(tmp_path):
  # Stored 40 wide x 20 high, left half red, right half blue; EXIF
  # orientation 6 means "rotate 90 degrees clockwise to display", which puts
  # the left (red) half on top of a 20 wide x 40 high image.
  pixels = np.zeros((20, 40, 3), np.uint8)
  pixels[:, :20] = (255, 0, 0)
  pixels[:, 20:] = (0, 0, 255)
  exif = Image.Exif()
  exif[0x0112] = 6
  path = str(tmp_path / 'rotated.jpg')
  Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
  image = np.asarray(preprocessing.decode_image(path))
  assert image.shape == (40, 20, 3)
  np.testing.assert_allclose(image[5, 10], (255, 0, 0), atol=8)
  np.testing.assert_allclose(image[35, 10], (0, 0, 255), atol=8)
  # Without the tag the same pixels stay landscape.
  Image.fromarray(pixels).save(path, quality=95)
  assert np.asarray(preprocessing.decode_image(path)).shape == (20, 40, 3)


def test_rgba_is_composited_over_white(tmp_path):
  pixels = np.zeros((2, 2, 4), np.uint8)
  pixels[0, 0] = (10, 20, 30, 255)   # Opaque: its own colour.
  pixels[0, 1] = (10, 20, 30, 0)     # Transparent: white.
  pixels[1, 0] = (0, 0, 0, 102)      # 40 % black over white: 255 * 0.6 = 153.
  path = str(tmp_path / 'alpha.png')
  Image.fromarray(pixels, 'RGBA').save(path)
  image = np.asarray(preprocessing.decode_image(path)).astype(int)
  assert image.shape == (2, 2, 3)
  np.testing.assert_array_equal(image[0, 0], (10, 20, 30))
  np.testing.assert_array_equal(image[0, 1], (255, 255, 255))
  np.testing.assert_allclose(image[1, 0], (153, 153, 153), atol=1)


def test_grayscale_and_16_bit_become_rgb(tmp_path):
  gray = np.array([[0, 100], [200, 255]], np.uint8)
  Image.fromarray(gray, 'L').save(str(tmp_path / 'gray.png'))
  image = np.asarray(preprocessing.decode_image(str(tmp_path / 'gray.png')))
  np.testing.assert_array_equal(image, np.stack([gray] * 3, -1))
  deep = Image.fromarray(np.array([[0, 65535], [32768, 257]], np.uint16))
  image = np.asarray(preprocessing.to_rgb(deep))
  np.testing.assert_array_equal(image[..., 0], [[0, 255], [128, 1]])


def test_webp_and_bytes(tmp_path):
  pixels = _coordinates(30, 50)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, 'WEBP', lossless=True)
  np.testing.assert_array_equal(
      np.asarray(preprocessing.decode_image(buffer.getvalue())), pixels)


def test_truncated_and_non_images_raise_oserror(tmp_path):
  path = str(tmp_path / 'photo.jpg')
  Image.fromarray(_coordinates(64, 64)).save(path)
  data = open(path, 'rb').read()
  with pytest.raises(OSError):
    preprocessing.decode_image(data[:len(data) // 2])
  with pytest.raises(OSError):
    preprocessing.decode_image(b'not an image')
  with pytest.raises(OSError):
    preprocessing.decode_image(str(tmp_path / 'missing.jpg'))


def test_resize_shorter_side_and_center_crop():
  image = Image.fromarray(_coordinates(300, 400))  # height 300, width 400.
  resized = preprocessing.resize_shorter_side(image, 256)
  assert resized.size == (341, 256)  # int(256 * 400 / 300) = 341.
  tall = Image.fromarray(_coordinates(500, 100))
  assert preprocessing.resize_shorter_side(tall, 256).size == (256, 1280)
  # Crop offsets: left round((400 - 224) / 2) = 88, top round(76 / 2) = 38.
  crop = np.asarray(preprocessing.center_crop(image, 224))
  assert crop.shape == (224, 224, 3)
  np.testing.assert_array_equal(crop[0, 0], (88, 38, 7))
  np.testing.assert_array_equal(crop[223, 223],
                                ((88 + 223) % 256, (38 + 223) % 256, 7))
  with pytest.raises(ValueError, match='resize'):
    preprocessing.center_crop(image, 320)


def test_load_image_shapes(tmp_path):
  path = str(tmp_path / 'wide.png')
  Image.fromarray(_coordinates(300, 400)).save(path)
  assert preprocessing.load_image(path).shape == (224, 224, 3)
  assert preprocessing.load_image(path).dtype == np.uint8
  assert preprocessing.load_image(path, 320, 288).shape == (288, 288, 3)
  assert preprocessing.load_image(path, 256, None).shape == (256, 341, 3)
  assert preprocessing.load_image(path, None, None).shape == (300, 400, 3)
  array = _coordinates(300, 400)
  np.testing.assert_array_equal(
      preprocessing.load_image(array, None, 224), array[38:262, 88:312])
  with pytest.raises(ValueError, match='resize_size'):
    preprocessing.load_image(path, 200, 224)


@pytest.mark.parametrize('kind', ['PNG', 'JPEG'])
def test_tf_geometry_matches_pillow(kind):
  # A smooth image, so TF's and Pillow's bilinear resizes nearly agree; its
  # gradients (0.7 and 0.9 grey levels per pixel after the resize) make a
  # crop one pixel off differ by more than that agreement. The JPEG decodes
  # to the same pixels in both (libjpeg's accurate DCT).
  y, x = np.mgrid[0:300, 0:400]
  pixels = np.stack([x * 0.6, y * 0.8, (x + y) * 0.35], -1).astype(np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, kind)
  resized = preprocessing.load_image(buffer.getvalue(), 256, None).astype(
      np.float32)
  assert resized.shape == (256, 341, 3)  # int(256 * 400 / 300) = 341.
  # Offsets: top round(32 / 2) = 16, left round(117 / 2) = 58 (half to even).
  top, left = 16, 58
  expected = preprocessing.load_image(buffer.getvalue()).astype(np.float32)
  np.testing.assert_array_equal(
      expected, resized[top:top + 224, left:left + 224])
  image = preprocessing.tf_decode_and_crop(
      tf.constant(buffer.getvalue())).numpy()
  assert image.shape == (224, 224, 3)
  assert np.abs(image - expected).max() <= 1.0
  # Mean |difference| to Pillow's crop and to the eight crops 1 px off.
  errors = {(dy, dx): np.abs(image - resized[
      top + dy:top + dy + 224, left + dx:left + dx + 224]).mean()
            for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
  centred = errors.pop((0, 0))
  assert centred < 0.3 and min(errors.values()) > 2 * centred, errors
