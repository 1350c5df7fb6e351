"""Writes the JPEG bases of the fuzz tests into test/fixtures/fuzz/ (run once with PIL; the files are committed).

Small images that between them use every path of the decoder: baseline and progressive, 4:4:4, 4:2:2 and 4:2:0
sampling, odd sizes (partial MCUs), optimised Huffman tables, restart intervals, gray, Adobe CMYK.
The restart-interval files come from libjpeg-turbo's cjpeg (Debian libjpeg-turbo-progs): PIL 9 cannot write them.
"""
import os
import random
import subprocess

from PIL import Image

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "fuzz")


def picture(w, h, seed):
    rng = random.Random(seed)
    img = Image.new("RGB", (w, h))
    # Smooth gradients plus noise: realistic coefficient statistics, every AC band in use.
    img.putdata([(
        (7 * x + 3 * y + rng.randrange(24)) % 256,
        (x * x // 3 + 5 * y + rng.randrange(24)) % 256,
        (128 + 4 * (x - y) + rng.randrange(24)) % 256,
    ) for y in range(h) for x in range(w)])
    return img


def main():
    os.makedirs(HERE, exist_ok=True)
    save = lambda img, name, **kw: img.save(os.path.join(HERE, name), "JPEG", **kw)
    save(picture(21, 13, 1), "baseline-444.jpg", quality=85, subsampling=0)
    save(picture(19, 17, 2), "baseline-422.jpg", quality=75, subsampling=1)
    save(picture(23, 18, 3), "baseline-420-optimized.jpg", quality=70, subsampling=2, optimize=True)
    save(picture(26, 20, 4), "progressive-420.jpg", quality=80, subsampling=2, progressive=True)
    save(picture(17, 15, 5), "progressive-444.jpg", quality=90, subsampling=0, progressive=True)
    ppm = os.path.join(HERE, "restart.ppm")
    picture(40, 24, 6).save(ppm)
    for name, args in [("restart-420.jpg", ["-sample", "2x2", "-restart", "1B"]),
                       ("restart-progressive.jpg", ["-progressive", "-restart", "2B"])]:
        with open(os.path.join(HERE, name), "wb") as out:
            subprocess.run(["cjpeg", "-quality", "75", *args, ppm], stdout=out, check=True)
    os.remove(ppm)
    save(picture(18, 11, 7).convert("L"), "gray-progressive.jpg", quality=85, progressive=True)
    save(picture(13, 9, 8).convert("CMYK"), "cmyk.jpg", quality=85)


if __name__ == "__main__":
    main()
