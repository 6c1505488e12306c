#!/usr/bin/env python3
"""Run the Autobahn|Testsuite fuzzing server (cases 1-10) against the WebSocket client.

    python tools/measure/conformance_client.py --wstest .venv2/bin/wstest --micropython .venv/bin/micropython
    python tools/measure/conformance_client.py --cases "1.*,2.*"
    python tools/measure/conformance_client.py --client-cmd "python3 my_client.py --url {url} --agent {agent}"

Starts `wstest -m fuzzingserver` on a free loopback port, runs tools/measure/echo_client.py
(MicroPython's Unix port) against it, then reads reports/autobahn-client/index.json and
prints the same summary as tools/measure/conformance.py (the server side): counts per case group,
every FAILED case with the suite's own explanation, the 9.7/9.8 durations.
Exit status: 0 all cases pass, 1 some case FAILED, 2 the run itself broke
(the fuzzing server did not start, the client crashed or timed out, no results).
"""
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # the repo root: tools.*
from tools.measure import conformance  # noqa: E402
from tools.measure.conformance import REPORTS, ROOT, free_port, log, stop, summarize, tail, wait_listening

OUTDIR = "reports/autobahn-client"  # relative to ROOT; wstest runs with cwd=ROOT
AGENT = "tether-client"
DEFAULT_CASES = conformance.DEFAULT_CASES
DEFAULT_CLIENT = ("{micropython} -X heapsize=64M tools/measure/echo_client.py"
                  " --url {url} --agent {agent}")


def main():
    args = conformance.arguments(__doc__, "--client-cmd", "command running any echo client; {url} and {agent} are "
                                                          "replaced (default: %s)" % DEFAULT_CLIENT,
                                 900, "whole client run, seconds")
    port = free_port()
    url = "ws://127.0.0.1:%d" % port
    spec = {"url": url, "outdir": OUTDIR,
            "cases": [c.strip() for c in args.cases.split(",") if c.strip()],
            "exclude-cases": [], "exclude-agent-cases": {}}
    spec_path = conformance.write_spec(spec, "fuzzingserver.json", OUTDIR)

    wlog_path = os.path.join(REPORTS, "wstest-fuzzingserver.log")
    wlog = open(wlog_path, "w")
    log("wstest fuzzingserver on %s, cases %s (log: %s)" % (url, ",".join(spec["cases"]),
                                                            os.path.relpath(wlog_path, ROOT)))
    # -u 0: no web server for the reports (it would take port 8080).
    suite = subprocess.Popen([args.wstest, "-m", "fuzzingserver", "-s", spec_path, "-u", "0"], cwd=ROOT,
                             stdout=wlog, stderr=subprocess.STDOUT, start_new_session=True,
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
    client_log_path = os.path.join(REPORTS, "conformance-client.log")
    status = 0
    try:
        if not wait_listening(port, suite, 60):
            log("the fuzzing server did not start listening on port %d (status %s); its output:\n%s"
                % (port, suite.poll(), tail(wlog_path)))
            return 2
        cmd = (args.client_cmd or DEFAULT_CLIENT).format(
            url=url, agent=AGENT, micropython=shlex.quote(args.micropython))
        log("client: %s (log: %s)" % (cmd, os.path.relpath(client_log_path, ROOT)))
        started = time.monotonic()
        with open(client_log_path, "w") as client_log:
            client = subprocess.Popen(cmd, shell=True, cwd=ROOT, stdout=client_log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            try:
                client.wait(args.timeout)
            except subprocess.TimeoutExpired:
                log("client did not finish within %.0f s" % args.timeout)
                status = 2
            finally:
                stop(client)
        log("client ran for %.1f s, exit status %s" % (time.monotonic() - started, client.returncode))
        if client.returncode != 0 and status == 0:
            log("CLIENT FAILED: exit status %s. Last output:\n%s" % (client.returncode, tail(client_log_path)))
            status = 2
        if suite.poll() is not None:
            log("the fuzzing server exited during the run (status %s):\n%s" % (suite.returncode, tail(wlog_path)))
            status = 2
    finally:
        stop(suite)
        wlog.close()

    results, err = conformance.load_results(AGENT, OUTDIR)
    if err:
        log(err)
        return 2
    failed = summarize(results, OUTDIR)
    return conformance.verdict_status(results, failed, status, OUTDIR, "the results above may be PARTIAL")

if __name__ == "__main__":
    sys.exit(main())
