"""Prefetch resolution, the FHIR fallback client and PatientRecord assembly."""
