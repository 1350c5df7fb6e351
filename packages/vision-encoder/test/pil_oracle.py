"""Decodes images with PIL for the fuzz tests: one long-lived process, many cases.

Protocol on stdin/stdout, every integer a 4-byte big-endian unsigned:
  request:  length, file bytes              (length 0 ends the process)
  response: length, UTF-8 JSON, length, pixel bytes

JSON: {"ok": true, "format", "mode", "width", "height", "alpha", "maxIndex" (palette images)} or {"ok": false, "stage": "open"|"load", "error"}.
Pixels: 8-bit samples of `mode` ("L", "RGB", "RGBA", "LA"), or 16-bit big-endian samples for "I16" (16-bit gray,
which PIL holds at full precision). Palette images come converted to RGBA by PIL ("alpha" says whether a tRNS
chunk made that alpha), 1-bit images to L, CMYK to RGB. Nothing is done that PIL does not do itself.

argv[1]: the pixel cap. PIL refuses images above 2 * MAX_IMAGE_PIXELS, so that is set to half the cap.
"""
import io
import json
import struct
import sys
import warnings

from PIL import Image

Image.MAX_IMAGE_PIXELS = int(sys.argv[1]) // 2 if len(sys.argv) > 1 else None
warnings.simplefilter("ignore")


def decode(data):
    stage = "open"
    try:
        im = Image.open(io.BytesIO(data))
        stage = "load"
        im.load()
        info = {"ok": True, "format": im.format, "width": im.width, "height": im.height, "alpha": False}
        mode = im.mode
        if mode == "P":
            info["alpha"] = "transparency" in im.info
            info["maxIndex"] = im.getextrema()[1]  # the largest palette index the pixels use
            im = im.convert("RGBA")
        elif mode == "1":
            im = im.convert("L")
        elif mode == "CMYK":
            im = im.convert("RGB")  # PIL's own CMYK conversion, what PIL users (and HF processors) get
        elif mode in ("I", "I;16", "I;16B"):
            values = list(im.getdata())
            info["mode"] = "I16"
            return info, struct.pack(">%dH" % len(values), *values)
        info["mode"] = im.mode
        return info, im.tobytes()
    except Exception as e:  # every refusal, whatever its type, is an answer
        return {"ok": False, "stage": stage, "error": "%s: %s" % (type(e).__name__, e)}, b""


def main():
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        (n,) = struct.unpack(">I", head)
        if n == 0:
            return
        data = stdin.read(n)
        info, pixels = decode(data)
        meta = json.dumps(info).encode("utf-8")
        stdout.write(struct.pack(">I", len(meta)) + meta + struct.pack(">I", len(pixels)) + pixels)
        stdout.flush()


if __name__ == "__main__":
    main()
