"""Read-only billing API and dashboard for accountants (`python -m billing_pipeline.api`, docs/billing-api.md)."""
