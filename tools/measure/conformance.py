#!/usr/bin/env python3
"""Run the Autobahn|Testsuite fuzzing client (cases 1-10) against the echo server.

    python tools/measure/conformance.py --wstest .venv2/bin/wstest --micropython .venv/bin/micropython
    python tools/measure/conformance.py --wstest W --server-cmd "python3 my_echo.py --port {port}" --cases "1.*,2.*"

Starts the server on a free loopback port, runs `wstest -m fuzzingclient`, then reads
reports/autobahn/index.json and prints a summary per case group, every FAILED case with
the suite's own explanation, and the durations of the 9.7/9.8 (many small messages) cases.
Exit status: 0 all cases pass, 1 some case FAILED, 2 the run itself broke
(server crashed, wstest timed out, no results).
"""
import argparse
import json
import select
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.common import REPORTS, ROOT, free_port, stop  # noqa: E402
from tools.common import wait_port as wait_listening  # noqa: E402,F401  (conformance_client uses it)
OUTDIR = "reports/autobahn"          # relative to ROOT; wstest runs with cwd=ROOT
AGENT = "tether"
DEFAULT_CASES = ",".join("%d.*" % n for n in range(1, 11))
DEFAULT_SERVER = ("{micropython} -X heapsize=64M tools/measure/echo_server.py"
                  " --port {port} --host 127.0.0.1 --max-message 16777216")
CATEGORIES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def log(msg):
    print("[conformance] " + msg, flush=True)


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def case_key(case_id):
    return tuple(int(p) for p in case_id.split("."))


def run_wstest(wstest, spec_path, server, timeout):
    """Run wstest, printing one progress line per case subgroup (e.g. 2, 5.1, 9.7).

    Returns (ok, reason). Stops early if the server dies: every later case would
    fail for that one reason and hide it."""
    cmd = [wstest, "-m", "fuzzingclient", "-s", spec_path]
    wlog_path = os.path.join(REPORTS, "wstest.log")
    wlog = open(wlog_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1")   # progress lines as they happen
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last_group, count, buf = None, 0, ""
    reason = None
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.2)
            chunk = os.read(fd, 65536).decode("utf-8", "replace") if ready else ""
            if chunk:
                wlog.write(chunk)
                buf += chunk
                *lines, buf = buf.split("\n")
                for line in lines:
                    if line.startswith("Running test case ID "):
                        case_id = line.split()[4]
                        count += 1
                        group = case_id.rsplit(".", 1)[0]
                        if group != last_group:
                            last_group = group
                            log("  %6.1fs  case %-8s (%d run so far)"
                                % (time.monotonic() - started, case_id, count))
            elif ready or proc.poll() is not None:   # readable but empty: EOF
                proc.wait()
                break
            if server.poll() is not None:
                reason = "server exited with status %s during the run" % server.returncode
                break
            if time.monotonic() > deadline:
                reason = "wstest did not finish within %.0f s" % timeout
                break
    finally:
        stop(proc)
        wlog.close()
    if reason:
        return False, reason
    if proc.returncode != 0:
        return False, "wstest exited with status %s (see %s)" % (proc.returncode, wlog_path)
    log("wstest ran %d cases in %.1f s" % (count, time.monotonic() - started))
    return True, None


def load_results(agent=AGENT, outdir=OUTDIR):
    index_path = os.path.join(ROOT, outdir, "index.json")
    try:
        with open(index_path) as f:
            index = json.load(f)
    except (OSError, ValueError) as exc:
        return None, "cannot read %s: %s" % (index_path, exc)
    results = index.get(agent)
    if not results:
        return None, "%s has no results for agent %r" % (index_path, agent)
    return results, None


def case_detail(entry, outdir=OUTDIR):
    try:
        with open(os.path.join(ROOT, outdir, entry["reportfile"])) as f:
            return json.load(f)
    except (OSError, ValueError, KeyError):
        return {}


def verdict(entry):
    """One category per case; a FAILED closing handshake fails the case too."""
    behavior = entry.get("behavior", "?")
    if entry.get("behaviorClose") == "FAILED":
        return "FAILED"
    return behavior


def summarize(results, outdir=OUTDIR):
    """Print the tables; returns the list of FAILED case ids."""
    groups = {}
    others = []
    for case_id, entry in results.items():
        v = verdict(entry)
        counts = groups.setdefault(int(case_id.split(".")[0]), dict.fromkeys(CATEGORIES + ("other",), 0))
        if v in CATEGORIES:
            counts[v] += 1
        else:
            counts["other"] += 1
            others.append((case_id, v))
        if entry.get("behaviorClose") not in ("OK", "INFORMATIONAL", "FAILED", None) and v != "FAILED":
            # e.g. FAILED BY CLIENT: the server did not close TCP after the closing handshake,
            # so the suite dropped it after a timeout (not a failure, but slow and untidy).
            others.append((case_id, "close %s after %s ms: %s" % (
                entry.get("behaviorClose"), entry.get("duration"),
                " ".join(str(case_detail(entry, outdir).get("resultClose", "")).split()))))

    print()
    header = "| group | " + " | ".join(CATEGORIES) + " | other | total |"
    print(header)
    print("|" + "---|" * (len(CATEGORIES) + 3))
    totals = dict.fromkeys(CATEGORIES + ("other",), 0)
    for g in sorted(groups):
        c = groups[g]
        for k in totals:
            totals[k] += c[k]
        print("| %d | %s | %d | %d |" % (g, " | ".join(str(c[k]) for k in CATEGORIES),
                                         c["other"], sum(c.values())))
    print("| all | %s | %d | %d |" % (" | ".join(str(totals[k]) for k in CATEGORIES),
                                      totals["other"], sum(totals.values())))

    failed = sorted((c for c, e in results.items() if verdict(e) == "FAILED"), key=case_key)
    if failed:
        print("\nFAILED cases (%d):" % len(failed))
        for case_id in failed:
            entry = results[case_id]
            d = case_detail(entry, outdir)
            print("  %s  behavior=%s close=%s remoteCloseCode=%s" % (
                case_id, entry.get("behavior"), entry.get("behaviorClose"), entry.get("remoteCloseCode")))
            for field in ("description", "expectation", "result", "resultClose"):
                text = d.get(field)
                if text:
                    text = " ".join(str(text).split())
                    print("      %-12s %s" % (field + ":", text[:300] + ("..." if len(text) > 300 else "")))
    if others:
        print("\nNot FAILED but worth a look:")
        for case_id, what in sorted(set(others), key=lambda x: case_key(x[0])):
            print("  %s  %s" % (case_id, what))

    timed = [c for c in results if c.startswith(("9.7.", "9.8."))]
    if timed:
        print("\nDurations of the many-small-messages cases (ms):")
        for prefix in ("9.7", "9.8"):
            ids = sorted((c for c in timed if c.startswith(prefix + ".")), key=case_key)
            if not ids:
                continue
            print("  " + "  ".join("%s=%s" % (c, results[c].get("duration")) for c in ids))
            core = [c for c in ids if 2 <= case_key(c)[2] <= 6]
            if core:
                total = sum(results[c].get("duration") or 0 for c in core)
                print("  total %s.2-%s.6: %d ms" % (prefix, prefix, total))
    return failed


def arguments(doc, command, command_help, timeout, timeout_help):
    """The options both sides take (this file and conformance_client.py): the
    wstest and MicroPython to run, the command under test (`command`, e.g.
    "--server-cmd"), the cases and the run's time limit."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wstest", default=os.path.join(ROOT, ".venv2", "bin", "wstest"))
    ap.add_argument("--micropython", default=os.path.join(ROOT, ".venv", "bin", "micropython"))
    ap.add_argument(command, help=command_help)
    ap.add_argument("--cases", default=DEFAULT_CASES, help="comma separated, default %(default)s")
    ap.add_argument("--timeout", type=float, default=timeout, help=timeout_help)
    args = ap.parse_args()
    os.makedirs(REPORTS, exist_ok=True)
    return args


def write_spec(spec, name, outdir=OUTDIR):
    """Write wstest's spec as reports/<name> and delete outdir's results from an
    earlier run (stale results must not pass for this one); returns the path."""
    spec_path = os.path.join(REPORTS, name)
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2)
    stale = os.path.join(ROOT, outdir, "index.json")
    if os.path.exists(stale):
        os.remove(stale)
    return spec_path


def verdict_status(results, failed, status, outdir, partial):
    """Print the closing lines of a run and return its exit status: 0 all
    passed, 1 some case FAILED, 2 the run broke (status 2 in, with `partial`
    saying why the results may be incomplete)."""
    print()
    log("report: %s/index.html" % outdir)
    if status == 2:
        log(partial)
    if failed:
        log("%d case(s) FAILED" % len(failed))
        status = status or 1
    elif status == 0:
        log("all %d cases passed (OK / NON-STRICT / INFORMATIONAL / UNIMPLEMENTED)" % len(results))
    return status


def main():
    args = arguments(__doc__, "--server-cmd", "command starting any echo server; {port} is replaced "
                                              "(default: %s)" % DEFAULT_SERVER, 1200, "whole wstest run, seconds")
    port = free_port()
    cmd = (args.server_cmd or DEFAULT_SERVER).format(port=port, micropython=shlex.quote(args.micropython))
    server_log_path = os.path.join(REPORTS, "conformance-server.log")
    server_log = open(server_log_path, "w")
    log("server: %s" % cmd)
    server = subprocess.Popen(cmd, shell=True, cwd=ROOT, stdout=server_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        if not wait_listening(port, server, 20):
            log("server did not start listening on port %d (status %s); its output:\n%s"
                % (port, server.poll(), tail(server_log_path)))
            return 2

        spec = {"outdir": OUTDIR,
                "servers": [{"agent": AGENT, "url": "ws://127.0.0.1:%d" % port}],
                "cases": [c.strip() for c in args.cases.split(",") if c.strip()],
                "exclude-cases": [],
                "exclude-agent-cases": {}}
        spec_path = write_spec(spec, "fuzzingclient.json")

        log("wstest fuzzingclient, cases %s (log: reports/wstest.log)" % ",".join(spec["cases"]))
        ran, reason = run_wstest(args.wstest, spec_path, server, args.timeout)
        alive = server.poll() is None
    finally:
        stop(server)
        server_log.close()

    status = 0
    if not alive:
        log("SERVER CRASHED: exited with status %s. Last output:\n%s"
            % (server.returncode, tail(server_log_path)))
        status = 2
    else:
        log("server still alive at the end: yes")
    if not ran:
        log("run broken: %s" % reason)
        status = 2

    results, err = load_results()
    if err:
        log(err)
        return 2
    failed = summarize(results)
    return verdict_status(results, failed, status, OUTDIR,
                          "the results above are PARTIAL: %s" % (reason if not ran else "the server crashed"))

if __name__ == "__main__":
    sys.exit(main())
