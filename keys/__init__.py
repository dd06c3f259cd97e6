"""Key custody: generating keys, keeping them encrypted on disk, and loading signers.

Private keys never leave this package unencrypted except as in-memory signers.
"""
