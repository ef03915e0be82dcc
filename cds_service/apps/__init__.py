"""Web apps served by the service (the STarT Back questionnaire, the red-flag screen)."""
