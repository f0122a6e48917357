def test_directory(network):
    client = network.agency("gd-health")
    names = [a.name for a in client.agencies()]
    assert names == ["agencies/gd-health", "agencies/sz-market", "agencies/zj-stats"]
