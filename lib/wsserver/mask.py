# Client-to-server payload unmasking (RFC 6455 §5.3).


def _unmask_py(buf, n, key):
    # Big-int XOR: one C-level operation instead of a Python loop per byte.
    if n == 0:
        return
    reps = (n + 3) >> 2
    k = bytes(key[:4]) * reps
    x = int.from_bytes(bytes(buf[:n]), "little") ^ int.from_bytes(k[:n], "little")
    buf[:n] = x.to_bytes(n, "little")


unmask = _unmask_py
try:
    from ._native import unmask  # noqa: F811  viper, a word at a time
except (ImportError, SyntaxError, AttributeError, NameError, MemoryError):
    # MemoryError: the ESP8266 keeps viper code in a spare iRAM area of a few
    # hundred bytes (ports/esp8266/modesp.c esp_native_code_commit), too small for _native
    pass
