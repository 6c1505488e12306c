# Exceptions that name the rule that was broken.


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to fail the connection
    with, `reason` the rule broken: a str, or the number of the codec's
    text in wsserver/reasons.py (formatted with `arg`), worded here."""

    def __init__(self, code, reason, arg=None):
        if type(reason) is int:
            reason = word(reason, arg)
        super().__init__(reason)
        self.code = code
        self.reason = reason


class HTTPError(Exception):
    """A request we answer with `status` and a plain-text `reason`, then close."""

    def __init__(self, status, reason, headers=None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class ConnectionClosed(Exception):
    """Raised by send() once the connection is closed; `code` says how it closed."""

    def __init__(self, code):
        super().__init__("connection closed (%s)" % code)
        self.code = code


def drop(name):
    """Forget wsserver.<name>, a module loaded for one use: out of
    sys.modules and off the package (the import set it there too), so its
    heap is freed once nothing else holds it. (Here, in the module every
    other one imports.)"""
    import sys

    if sys.modules.pop("wsserver." + name, None) is not None:
        delattr(sys.modules["wsserver"], name)


def word(number, arg):
    # Loaded for this one text and dropped again. With no room for it, the
    # close code alone still says what kind of rule was broken.
    try:
        from .reasons import TEXTS

        text = TEXTS[number]
        return text if arg is None else text % arg
    except MemoryError:
        return ""
    finally:
        drop("reasons")
