# Exceptions that name the rule that was broken.


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to fail the connection with."""

    def __init__(self, code, reason):
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
