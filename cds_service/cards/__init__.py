"""Findings -> CDS Hooks Cards: text, citations, suggestions as FHIR R4 resources."""
