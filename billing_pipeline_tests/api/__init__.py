"""Tests of the billing API and dashboard (billing_pipeline.api)."""
