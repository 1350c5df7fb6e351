"""Writes the tiny JPEG fixtures in test/fixtures/ (run once with PIL; the files are committed).

Every fixture encodes the same analytic pattern, which the tests recompute in TypeScript:
  r = 8 * x + 4, g = 8 * y + 4, b = 128 + 4 * (x - y)   for x, y in 0..15 (16 x 16 pixels).
jpeg-js cannot encode grayscale, progressive or CMYK, so these come from libjpeg through PIL.
"""
import os

from PIL import Image

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def pattern():
    img = Image.new("RGB", (16, 16))
    img.putdata([(8 * x + 4, 8 * y + 4, 128 + 4 * (x - y)) for y in range(16) for x in range(16)])
    return img


def main():
    os.makedirs(HERE, exist_ok=True)
    rgb = pattern()
    rgb.convert("L").save(os.path.join(HERE, "gray.jpg"), quality=95)
    rgb.save(os.path.join(HERE, "progressive.jpg"), quality=95, progressive=True, subsampling=0)
    rgb.save(os.path.join(HERE, "subsampled-420.jpg"), quality=95, subsampling=2)
    rgb.convert("CMYK").save(os.path.join(HERE, "cmyk.jpg"), quality=95)


if __name__ == "__main__":
    main()
