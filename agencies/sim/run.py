"""Run one simulated agency as its own process against a running gateway:

    python -m agencies.sim.run --gateway 127.0.0.1:8443 --certs DIR/certs/gd-health

It talks to the gateway only through the SDK over mutual TLS with the agency's certificates,
exactly as an outside system would: it decides incoming requests by its policy, follows the
datasets it needs (fetching new versions it may read into its inbox) and publishes a new
version of its first dataset on a schedule, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from agencies.client import AgencyClient
from agencies.sim import behaviour, datasets
from gateway.v1 import catalog_pb2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="The gateway's HOST:PORT.")
    parser.add_argument("--certs", type=Path, required=True,
                        help="The agency's certificate folder, e.g. DIR/certs/gd-health.")
    parser.add_argument("--inbox", type=Path,
                        help="Where fetched content goes; default: DIR/inbox/<agency> for"
                        " --certs DIR/certs/<agency>.")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--publish-every", type=float, default=30.0,
                        help="Seconds between new versions.")
    args = parser.parse_args(argv)
    client = AgencyClient(args.gateway, args.certs, server_name="localhost")
    agency_id = client.identity.id
    inbox = args.inbox or args.certs.resolve().parent.parent / "inbox" / agency_id
    follow = tuple(name for name in behaviour.follows_of(agency_id)
                   if datasets.dataset(name).sharing_type != catalog_pb2.SHARING_TYPE_NOT_SHARED)
    agency = behaviour.Agency(client, args.seed, inbox,
                              policy=behaviour.policy_of(agency_id), follow=follow)
    agency.inbox.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    workers = [threading.Thread(target=agency.run, args=(stop,), daemon=True),
               threading.Thread(target=agency.publish_on_schedule,
                                args=(stop, args.publish_every), daemon=True)]
    for worker in workers:
        worker.start()
    stop.wait()
    client.close()
    if agency.failure is not None:
        raise SystemExit(f"{agency_id} failed: {agency.failure}")


if __name__ == "__main__":
    main()
