"""Card analytics for the governance team: aggregation (pure), SVG charts, HTML page and CSV."""
