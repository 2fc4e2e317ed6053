"""LAN beacons, sans-IO: signed presence and join messages over UDP multicast.

- wire.py: the versioned, signed envelope (<= 1200 bytes)
- messages.py: PRESENCE, JOIN_REQUEST, JOIN_RESPONSE bodies
- machine.py: BeaconProtocol (receive_datagram / datagrams_to_send / get_timer /
  handle_timer / next_event); config.py: BeaconConfig, Advert, Membership
- events.py: PeerSeen, JoinRequested, JoinAnswered, DatagramDropped, DropReason
- admin.py: AdminDesk (admission state, issuing); joining.py: JoinClient (retries)
- handlers.py: per-message checks; replay.py: per-sender replay window
"""
