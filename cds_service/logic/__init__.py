"""Pure clinical logic: rules over a PatientRecord, no I/O, no web, no settings.

Imports only the standard library, pydantic and its own modules (tests/test_architecture.py).
"""
