"""Moving content trust from other systems to trustkit.

``migrate.notary`` reads and verifies a Notary v1 / Docker Content Trust repository the
way Notary's own client does, and hands back its signed tags, signers and keys.
"""
