# Payload unmasking and UTF-8 validation in plain Python: the twins of
# wsserver/_native.py's viper code, for ports where viper code cannot be
# loaded (the ESP8266: its machine code goes to a spare iRAM area of a few
# hundred bytes, ports/esp8266/modesp.c esp_native_code_commit) and for
# CPython. A module of its own so that a board running the viper code does
# not keep these in its heap too. frames.py imports one or the other.

# Client-to-server payload unmasking (RFC 6455 §5.3).
def unmask(buf, n, key):
    # Big-int XOR: one C-level operation instead of a Python loop per byte.
    if n == 0:
        return
    reps = (n + 3) >> 2
    k = bytes(key[:4]) * reps
    x = int.from_bytes(bytes(buf[:n]), "little") ^ int.from_bytes(k[:n], "little")
    buf[:n] = x.to_bytes(n, "little")


# Incremental UTF-8 validation (RFC 3629), resumable across WebSocket fragments.
#
# MicroPython's bytes.decode() is not a validator: it accepts surrogates,
# overlong forms and code points above U+10FFFF. RFC 6455 §8.1 requires the
# endpoint to fail a connection on any invalid text, so we check every byte.
#
# utf8_validate(buf, start, end, state) -> new state, or -1 (invalid).
# State 0 means "between characters": a message may end only there.
# The state packs how many continuation bytes are still needed (bits 0-1) and
# the allowed range of the next one (bits 8-15 low, 16-23 high), which is how
# overlong forms, surrogates and > U+10FFFF are rejected at their 2nd byte.

def utf8_validate(buf, start, end, state):
    need = state & 3
    lo = (state >> 8) & 0xFF
    hi = (state >> 16) & 0xFF
    i = start
    while i < end:
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
