"""Named credentials encrypted at rest (``credentials``, ``crypto``) and the redaction of
secrets from events and logs (``redact``).

Nothing is imported here, so a tool that needs only ``redact`` does not load the
cryptography package.
"""
