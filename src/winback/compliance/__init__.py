"""Compliance: suppression, consent rules, quiet hours, retention, GDPR rights, audit."""
