"""What a publisher or a verifying host does against a metadata server.

``client`` shares only the wire format (TUF JSON) and the HTTP API with ``server``;
it never imports it.
"""
