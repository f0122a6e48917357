"""govshare gateway: the gRPC server, its services, storage and audit log."""
