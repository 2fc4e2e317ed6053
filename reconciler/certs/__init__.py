"""Certificates and admission, sans-IO (only files.py touches the disk).

- identity.py: NodeIdentity (Ed25519 seed), fingerprint(), node_id_for()
- root.py: create_pool_root(), PoolRoot, TrustAnchor (pinned root), pool_id_for()
- member.py: sign/verify member certificates, MemberCertInfo, needs_renewal(),
  node_id_from_peer_cert()
- tokens.py: join tokens and their HMAC proof of possession
- revocation.py: root-signed, grow-only RevocationList (encode/decode/merge)
- admission.py: decide_join() -> Approve | Deny | Pending
- files.py: 0600 atomic key and certificate files
- x509util.py, errors.py: shared helpers and the error tree (binary fields:
  reconciler/codec.py)
"""
