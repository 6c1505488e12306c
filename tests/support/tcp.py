"""What the kernel knows about a loopback TCP connection (Linux /proc/net/tcp),
for tests that wait for a buffer to fill or a side to close instead of sleeping."""

ESTABLISHED = 1


def _entry(local_port, remote_port):
    want = (":%04X" % local_port, ":%04X" % remote_port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(want[0]) and fields[2].endswith(want[1]):
                return fields
    return None


def send_queue(local_port, remote_port):
    """Bytes the kernel holds unsent/unacknowledged on the loopback socket
    local_port -> remote_port (Linux /proc/net/tcp tx_queue), or None."""
    fields = _entry(local_port, remote_port)
    return int(fields[4].split(":")[0], 16) if fields else None


def tcp_state(local_port, remote_port):
    """The kernel's state number for local_port -> remote_port (1 ESTABLISHED, 4
    FIN_WAIT1, 7 CLOSE ...), or None once the socket is gone."""
    fields = _entry(local_port, remote_port)
    return int(fields[3], 16) if fields else None
