# The texts of refused commands, by number: [field, text] (None: no field,
# or the one the caller names). Those a link refuses (car.remote.Remote.refuse)
# and those any client's message gets from car.protocol.parse. Loaded only
# to word a refusal, and dropped again.

TEXTS = [
    ["at", "at: missing or not a number; a drive over %s carries the car's uptime_ms when it was sent "
           "(ping gives it)"],  # 0
    ["at", "at: command is %d ms old (limit %d ms, the deadman); not acted on"],  # 1
    ["at", "at: %d ms ahead of the car's clock; ping to learn it again (the car may have restarted)"],  # 2
    [None, "retained commands are ignored; publish cmd with retain false"],  # 3 (car.fleet)
    # car.protocol.parse
    [None, "%s: missing; must be a number from %s to %s"],  # 4
    [None, "%s: must be a number from %s to %s"],  # 5
    [None, "messages must be JSON text frames, not binary"],  # 6
    [None, "message longer than %d characters"],  # 7
    [None, "not valid JSON"],  # 8
    [None, "message must be a JSON object"],  # 9
    ["type", "type: missing; must be one of drive, stop, resume, actuator, speed_limit, ping"],  # 10
    ["name", "name: must be one of light, horn, pan"],  # 11
    ["value", "value: must be true or false for %s"],  # 12
    ["id", "id: must be a string, a number or null"],  # 13
    ["latch", "latch: must be true or false (default true)"],  # 14
    ["type", "type: unknown; must be one of drive, stop, resume, actuator, speed_limit, ping"],  # 15
]
