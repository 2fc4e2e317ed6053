"""The agent's membership runtime: beacons, peer links, gossip and the ring, per pool."""
