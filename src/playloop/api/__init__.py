"""The HTTP API: ``create_app(engine, auth_required=...)`` in ``playloop.api.app``.

This package's ``__init__`` imports nothing, so the CLI's HTTP client
(``playloop.api.client``) loads without FastAPI's import cost.
"""
