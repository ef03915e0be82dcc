"""CDS Hooks routes: discovery, one handler per service call, feedback."""
