"""Moderation: detectors (PII, secrets, injection), policies, redaction, the stream window and
the optional trained and external classifiers."""
