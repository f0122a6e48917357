"""Tamper-evident audit log: RFC 6962 Merkle tree math and C2SP signed checkpoints."""
