"""govshare agencies: the Python SDK (`agencies.client`) and the simulated regional agencies."""
