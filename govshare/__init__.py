"""govshare's protocol core: what the gateway, the SDK, the CLI and peer gateways all need,
and nothing of the server: resource names, enum short names, signed envelopes, typed errors,
times and ids, column digests, spooling, and the transparency log's math (Merkle proofs,
signed notes, event records)."""
