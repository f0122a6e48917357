"""Thin gRPC servicers: proto in, domain call, proto out. Nothing else lives here.

Each servicer is built from the domain objects it serves through and the parts it uses
(gateway.server.register_services wires them), and holds as `gateway` only what the RPC
wrapper uses of the gateway (gateway.rpc.Gateway): the door every call passes.
"""
