# The config as it was checked: by the tools on the computer (the stamp,
# config.json.checked) or, when that does not match, here on the board.
# Loaded by car.load_config for its one call at start-up and dropped again.
from car import VERSION


def load(path):
    """(config, errors) from path. A config that tools/board/stage.py (make
    deploy, make image) checked on the computer is read as it was checked,
    without loading the checker: config.json.checked, beside it, holds on its
    first line the sha256 of the config's bytes, the board it was checked for
    and this app's VERSION (an update over the air brings another checker),
    then the checked config. Any other config (edited on the board, no stamp,
    another board or app) is checked here: the checker is loaded for this call
    and dropped again, since it is the biggest car module and only needed at
    start-up. No new names here but the module's own (docs/memory.md: the qstr
    pool is near a chunk edge): the file's name is a literal over 10 characters, which is not
    interned (py/parse.c), and the stamp line is joined from names that exist."""
    try:
        from binascii import hexlify
        from hashlib import sha256
        import json

        from hardware import on_board

        digest = sha256()
        with open(path, "rb") as f:
            data = f.read(256)  # in small pieces: no block the size of the file
            while data:
                digest.update(data)
                data = f.read(256)
        with open(path[:path.rfind("/") + 1] + "config.json.checked") as f:
            if f.readline() == " ".join([hexlify(digest.digest()).decode(), str(on_board()), VERSION]) + "\n":
                return json.load(f), []
    except (OSError, ValueError):  # no stamp, or a damaged one: checked here
        pass
    from car import config, drop
    try:
        return config.load(path)
    finally:
        for name in ["config", "tls", "uplink_config", "salvage"]:  # a list: no constant tuple kept
            drop(name)
