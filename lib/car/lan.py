# This computer's own IPv4 addresses, for `main.py --host 0.0.0.0` (a phone on
# the LAN driving the simulated car): the page's origin is then one of them,
# and these are the URLs worth printing. Imported only in that case.
# Linux lists every local address in /proc/net/fib_trie ("|-- 192.168.1.20"
# followed by "/32 host LOCAL"); elsewhere the list is empty and the README
# says to add the address to access.origins.


def addresses():
    found = []
    try:
        with open("/proc/net/fib_trie") as f:
            last = None
            for line in f:
                line = line.strip()
                if line[:4] == "|-- ":
                    last = line[4:]
                elif line == "/32 host LOCAL" and last and last[:4] != "127." and last not in found:
                    found.append(last)
    except OSError:
        pass
    return found
