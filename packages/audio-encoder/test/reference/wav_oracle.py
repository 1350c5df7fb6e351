"""The fuzz oracle for the WAV reader (audio-fuzz.test.ts): what each file should decode to, or that it must be refused.

  wav_oracle.py DIR   reads DIR/index.json (a list of file names), writes DIR/oracle.json and DIR/oracle.f32

Two independent readings. Plain PCM files (format code 1) are decoded by Python's `wave` module, and numpy turns
its bytes into floats (8-bit: (v - 128) / 128, n-bit signed: v / 2^(n-1)). Float and WAVE_FORMAT_EXTENSIBLE files,
which `wave` (Python 3.11) refuses, are read by this script's own strict header walk and numpy. The strict rules
(written from the RIFF/WAVE spec, not from the TypeScript) also apply to every file: a file they refuse must be
refused, and where `wave` reads a file the strict walk must agree with its header, else the oracle says so.
"""
import io
import json
import os
import sys
import wave

import numpy as np

SUFFIX = bytes([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71])
BUDGET = 256 * 2**20


class Refuse(Exception):
    pass


def u16(b, at):
    return int.from_bytes(b[at:at + 2], "little")


def u32(b, at):
    return int.from_bytes(b[at:at + 4], "little")


def strict_header(b):
    if len(b) < 12 or b[0:4] != b"RIFF" or b[8:12] != b"WAVE":
        raise Refuse("not RIFF/WAVE")
    riff_end = 8 + u32(b, 4)
    pos, fmt = 12, None
    while True:
        if pos + 8 > len(b):
            raise Refuse("no data chunk")
        cid, size = b[pos:pos + 4], u32(b, pos + 4)
        body, end = pos + 8, pos + 8 + size
        if cid == b"data":
            if fmt is None:
                raise Refuse("data before fmt")
            if end > len(b) or end > riff_end:
                raise Refuse("data truncated")
            break
        if end > len(b):
            raise Refuse("chunk truncated")
        if cid == b"fmt ":
            if fmt is not None:
                raise Refuse("two fmt chunks")
            fmt = parse_fmt(b, body, size)
        pos = end + (size & 1)
    code, extensible, ch, rate, bits = fmt
    align = ch * bits // 8
    if size % align:
        raise Refuse("partial frame")
    frames = size // align
    if frames == 0:
        raise Refuse("empty")
    if frames * (ch + 1) * 4 > BUDGET:
        raise Refuse("too large")
    return dict(code=code, extensible=extensible, channels=ch, rate=rate, bits=bits, frames=frames, offset=body, size=size)


def parse_fmt(b, at, size):
    if size < 16:
        raise Refuse("short fmt")
    tag, ch, rate, _byte_rate, align, bits = u16(b, at), u16(b, at + 2), u32(b, at + 4), u32(b, at + 8), u16(b, at + 12), u16(b, at + 14)
    code, valid, extensible = tag, bits, tag == 0xFFFE
    if extensible:
        if size < 40 or u16(b, at + 16) < 22:
            raise Refuse("short extensible fmt")
        valid, code = u16(b, at + 18), u16(b, at + 24)
        if b[at + 26:at + 40] != SUFFIX:
            raise Refuse("sub-format GUID")
    if code not in (1, 3):
        raise Refuse("format code")
    if bits not in ((8, 16, 24, 32) if code == 1 else (32, 64)):
        raise Refuse("bit depth")
    if not 1 <= valid <= bits:
        raise Refuse("valid bits")
    if not 1 <= ch <= 64:
        raise Refuse("channels")
    if not 1000 <= rate <= 768000:
        raise Refuse("sample rate")
    if align != ch * bits // 8:
        raise Refuse("block align")
    return code, extensible, ch, rate, bits


def pcm_to_float(raw, bits):
    if bits == 8:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    if bits == 16:
        return np.frombuffer(raw, "<i2").astype(np.float64) / 32768
    if bits == 24:
        u = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = u[:, 0] | (u[:, 1] << 8) | (u[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        return v.astype(np.float64) / 8388608
    return np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648


def read(b):
    h = strict_header(b)
    if h["code"] == 1 and not h["extensible"]:
        try:
            with wave.open(io.BytesIO(b)) as w:
                params = (w.getnchannels(), w.getsampwidth() * 8, w.getframerate(), w.getnframes())
                raw = w.readframes(w.getnframes())
        except Exception as e:  # noqa: BLE001 - any failure of the reference means the file is not readable
            raise Refuse(f"wave: {e}") from None
        if params != (h["channels"], h["bits"], h["rate"], h["frames"]):
            return {"conflict": f"wave read {params}, strict header {(h['channels'], h['bits'], h['rate'], h['frames'])}"}
        if len(raw) != h["size"]:
            raise Refuse("wave: short read")
        x = pcm_to_float(raw, h["bits"])
    else:
        raw = b[h["offset"]:h["offset"] + h["size"]]
        if h["code"] == 1:
            x = pcm_to_float(raw, h["bits"])
        else:
            x = np.frombuffer(raw, "<f4" if h["bits"] == 32 else "<f8").astype(np.float64)
            if not np.all(np.isfinite(x)):
                raise Refuse("non-finite float")
            x = np.clip(x, -1, 1)
    return {"rate": h["rate"], "channels": h["channels"], "frames": h["frames"], "samples": x.astype(np.float32)}


def main(dirname):
    names = json.load(open(os.path.join(dirname, "index.json")))
    results, blobs, offset = [], [], 0
    for name in names:
        with open(os.path.join(dirname, name), "rb") as f:
            b = f.read()
        try:
            r = read(b)
        except Refuse as e:
            results.append({"ok": False, "why": str(e)})
            continue
        if "conflict" in r:
            results.append({"ok": False, "conflict": r["conflict"]})
            continue
        blobs.append(r.pop("samples"))
        results.append({"ok": True, "offset": offset, **r})
        offset += r["frames"] * r["channels"]
    (np.concatenate(blobs) if blobs else np.zeros(0, np.float32)).astype("<f4").tofile(os.path.join(dirname, "oracle.f32"))
    json.dump(results, open(os.path.join(dirname, "oracle.json"), "w"))


if __name__ == "__main__":
    main(sys.argv[1])
