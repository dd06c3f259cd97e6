"""The trustkit metadata server: stores each repository's TUF metadata, checks uploads,
and signs snapshot and timestamp with online keys so hosts always get fresh metadata.

It never holds or asks for an offline (root, targets or signer) private key.
"""
