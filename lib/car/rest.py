# The HTTP API's status and update routes (docs/protocol.md), imported by
# the first request to them: a plain car never loads this module. The stop
# route lives in car/app.py, so that a stop never waits on an import.
from time import ticks_ms

from wsserver.errors import HTTPError


def handle(car, request):
    access = car.access
    # A viewer's rules: the origin, and the token when viewers need it.
    verdict = access.accept(request) if access else None
    if isinstance(verdict, list) or isinstance(verdict, tuple):
        raise HTTPError(verdict[0], verdict[1])
    request.data = verdict  # car.access.DRIVER when it brought the token
    request.id = 0  # the hello of a viewer that is not a WebSocket client
    if request.path == "/api/status":
        # One object; the telemetry is made now, with the last broadcast's seq.
        return 200, '{"hello":%s,"telemetry":%s}' % (
            car.hello(request), car.telemetry(ticks_ms(), car.seq)), "application/json"
    from car import ota  # /api/update: only when an update request arrives

    return ota.handle(car, request)
