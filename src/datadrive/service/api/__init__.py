"""The HTTP API, ``/api/v1``: one router module per area of the library it exposes."""
