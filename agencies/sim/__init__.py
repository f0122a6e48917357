"""A simulated network of government agencies for the demo and the tests.

`roster` names the agencies, `datasets` generates their synthetic data deterministically from a
seed, `behaviour` holds each agency's rules and runs it against the gateway through the SDK,
`scenario` drives the demo step by step on its gateways, and `national` adds the steps only a
national network of member gateways shows.
"""
