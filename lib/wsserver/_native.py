# Hot loops compiled to machine code with MicroPython's viper emitter.
# Imported only where viper exists; frames.py falls back to _portable.py.
import micropython


# The same state machine as _portable.utf8_validate (which documents it): viper
# needs typed machine-word code, so the twin is deliberate. Keep them in step;
# tests/codec/test_codec.py runs both against the same cases.
@micropython.viper
def utf8_validate(buf: ptr8, start: int, end: int, state: int) -> int:
    need = state & 3
    lo = (state >> 8) & 0xFF
    hi = (state >> 16) & 0xFF
    i = start
    addr = int(buf)
    while i < end:
        if need == 0 and ((addr + i) & 3) == 0:
            # ASCII fast path: four bytes at a time while none has bit 7 set.
            words = ptr32(addr + i)
            w = 0
            last = (end - i) >> 2
            # 0x80808080, built at run time: as a constant it is too big for
            # a 32-bit small int, and viper would make it an object.
            high = 0x808080
            high = high | (high << 8)
            while w < last and (words[w] & high) == 0:
                w += 1
            i += w << 2
            if i >= end:
                break
        b = buf[i]
        i += 1
        if need == 0:
            if b < 0x80:
                continue
            if b < 0xC2:
                return -1
            lo = 0x80
            hi = 0xBF
            if b < 0xE0:
                need = 1
            elif b < 0xF0:
                need = 2
                if b == 0xE0:
                    lo = 0xA0
                elif b == 0xED:
                    hi = 0x9F
            elif b < 0xF5:
                need = 3
                if b == 0xF0:
                    lo = 0x90
                elif b == 0xF4:
                    hi = 0x8F
            else:
                return -1
        else:
            if b < lo or b > hi:
                return -1
            need -= 1
            lo = 0x80
            hi = 0xBF
    if need == 0:
        return 0
    return need | (lo << 8) | (hi << 16)


@micropython.viper
def unmask(buf: ptr8, n: int, key: ptr8):
    # Any start address (a frame inside the receive buffer): bytes one at a
    # time up to a word boundary, then whole words with the key rotated to
    # match (an unaligned word access faults on Xtensa), then the tail.
    addr = int(buf)
    i = 0
    while i < n and ((addr + i) & 3) != 0:
        buf[i] = buf[i] ^ key[i & 3]
        i += 1
    j = i & 3
    k = key[j] | (key[(j + 1) & 3] << 8) | (key[(j + 2) & 3] << 16) | (key[(j + 3) & 3] << 24)
    words = ptr32(addr + i)
    nw = (n - i) >> 2
    w = 0
    while w < nw:
        words[w] = words[w] ^ k
        w += 1
    i += nw << 2
    while i < n:
        buf[i] = buf[i] ^ key[i & 3]
        i += 1
