"""The operator's pages, not CDS Hooks: card analytics (/analytics, /analytics.csv) and the API
docs (/docs, /openapi.json), all behind the admin token (auth.admin_allowed)."""
