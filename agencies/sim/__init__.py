"""A simulated network of government agencies for the demo and the tests.

`roster` names the agencies, `datasets` generates their synthetic data deterministically from a
seed, `behaviour` holds each agency's rules and runs it against the gateway through the SDK, and
`scenario` drives the whole demo step by step.
"""
