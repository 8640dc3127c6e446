#!/usr/bin/python3
"""A local SMTP server for the academic example (Debian's python3-aiosmtpd).

Stores every accepted message as one file in --dir (NNNNNN.eml) and prints
one line per delivery. --fail-file FILE: each line "RCPT N" makes the next N
deliveries to RCPT fail with 451 (transient), "RCPT *" makes them all fail;
the file is re-read at each delivery, so a test or a demo can change it
while the server runs.

    /usr/bin/python3 examples/academic/smtp-sink.py --port 2525 --dir /tmp/mail
"""
import argparse, asyncio, os, signal, sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, fail_file):
        self.dir = directory
        self.fail_file = fail_file
        self.seen = {}  # rcpt -> failures served so far
        self.n = len([f for f in os.listdir(directory) if f.endswith(".eml")])

    def should_fail(self, rcpt):
        if not self.fail_file or not os.path.exists(self.fail_file):
            return False
        with open(self.fail_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == rcpt:
                    if parts[1] == "*":
                        return True
                    done = self.seen.get(rcpt, 0)
                    if done < int(parts[1]):
                        self.seen[rcpt] = done + 1
                        return True
        return False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.should_fail(address):
            print(f"smtp-sink: 451 for {address}", flush=True)
            return "451 4.3.0 Try again later (smtp-sink --fail-file)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.dir, f"{self.n:06d}.eml")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, path)
        print(f"smtp-sink: {path} to {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 Message accepted"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=2525)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--fail-file")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    ctl = Controller(Sink(a.dir, a.fail_file), hostname=a.host, port=a.port)
    ctl.start()
    print(f"smtp-sink: listening on {a.host}:{a.port}, messages in {a.dir}", flush=True)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    loop.run_until_complete(stop.wait())
    ctl.stop()


if __name__ == "__main__":
    sys.exit(main())
