# Echo client for the Autobahn|Testsuite fuzzingserver (client conformance):
#   micropython tools/measure/echo_client.py --url ws://127.0.0.1:9001 --agent tether-client
#       [--first N] [--last N] [--max-message BYTES] [--buffer BYTES]
# Asks /getCaseCount, runs /runCase?case=N&agent=NAME for each case, echoing
# every message as it came (text as text, binary as binary), then asks
# /updateReports?agent=NAME so the suite writes its report.
# Cases 9.1.3-9.1.6/9.2.3-9.2.6 send messages of 1 to 16 MiB: run it with -X heapsize=64M
# (make conformance-client does); the default heap fails them with 1011 (out of memory).
import sys

sys.path.insert(0, (__file__.rpartition("/")[0] or ".") + "/../../lib")

import asyncio

from wsclient import ConnectionClosed, HandshakeError, connect


def parse_args(argv):
    opts = {"url": "ws://127.0.0.1:9001", "agent": "tether-client", "max-message": 16777216 + 1024,
            "buffer": 65536, "first": 1, "last": 0}
    i = 1
    while i < len(argv):
        name = argv[i].lstrip("-")
        if name not in opts:
            raise SystemExit("unknown option " + argv[i])
        i += 1
        opts[name] = argv[i] if name in ("url", "agent") else int(argv[i])
        i += 1
    return opts


async def case_count(base):
    ws = await connect(base + "/getCaseCount")
    count = int(await ws.recv())
    await ws.close()
    return count


async def run_case(base, n, agent, opts):
    try:
        ws = await connect("%s/runCase?case=%d&agent=%s" % (base, n, agent),
                           max_message=opts["max-message"], buffer_size=opts["buffer"])
    except (HandshakeError, OSError) as e:
        print("case %d: no connection: %s" % (n, e))
        return
    try:
        while True:
            message = await ws.recv()
            if message is None:
                break
            await ws.send(message)
    except ConnectionClosed:
        pass
    # Drain until the close handshake ends (a send may have failed first).
    while await ws.recv() is not None:
        pass


async def main():
    opts = parse_args(sys.argv)
    base = opts["url"].rstrip("/")
    agent = opts["agent"]
    count = await case_count(base)
    last = opts["last"] or count
    print("%d cases; running %d-%d as agent %s" % (count, opts["first"], last, agent))
    for n in range(opts["first"], last + 1):
        await run_case(base, n, agent, opts)
    ws = await connect("%s/updateReports?agent=%s" % (base, agent))
    await ws.close()
    print("reports updated")


asyncio.run(main())
