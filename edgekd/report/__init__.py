"""Pipeline reports: what a run measured, as HTML and markdown with plots."""
