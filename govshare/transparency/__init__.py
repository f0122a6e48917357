"""The transparency log's math: RFC 6962 Merkle trees and proofs, C2SP signed notes and
checkpoints, and the bytes of an audit event record."""
