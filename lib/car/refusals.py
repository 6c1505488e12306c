# The texts of the commands a link refuses (car.remote.Remote.refuse), by
# number: [field, text]. Loaded only to word a refusal, and dropped again.

TEXTS = [
    ["at", "at: missing or not a number; a drive over %s carries the car's uptime_ms when it was sent "
           "(ping gives it)"],  # 0
    ["at", "at: command is %d ms old (limit %d ms, the deadman); not acted on"],  # 1
    ["at", "at: %d ms ahead of the car's clock; ping to learn it again (the car may have restarted)"],  # 2
    [None, "retained commands are ignored; publish cmd with retain false"],  # 3 (car.fleet)
]
