"""A real SMTP server (aiosmtpd) that keeps every message it accepts.

Each accepted message is written to DIR as `<seq>-<unix-ns>.eml` (the bytes
as received, so a test reads exactly what arrived) with a `.json` beside it
holding the envelope (MAIL FROM, RCPT TO). Recipients at the domain
`reject.invalid` are refused with `550`, so tests can see a permanent
rejection from a real server. Files appear atomically: written
under a dot-name, then renamed, `.json` first so a reader that sees an
`.eml` also sees its envelope.

    python3 smtp_sink.py --host 127.0.0.1 --port 2525 --dir /tmp/mail
"""

import argparse
import asyncio
import itertools
import json
import os
import signal
import time

from aiosmtpd.controller import Controller


class SinkHandler:
    def __init__(self, folder):
        self.folder = folder
        self.seq = itertools.count(1)

    def _write(self, name, data):
        tmp = os.path.join(self.folder, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.folder, name))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A fixed way to make a real server refuse a recipient, so tests can
        # see a permanent (5xx) rejection.
        if address.lower().endswith("@reject.invalid"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        base = "%06d-%d" % (next(self.seq), time.time_ns())
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": str(session.peer),
        }
        self._write(base + ".json", json.dumps(meta).encode())
        self._write(base + ".eml", envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(SinkHandler(args.dir), hostname=args.host, port=args.port)
    controller.start()
    print("smtp sink listening on %s:%d, saving to %s" % (args.host, args.port, args.dir), flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
