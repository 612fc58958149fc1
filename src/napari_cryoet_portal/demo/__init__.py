"""A deterministic, synthetic stand-in for the CryoET Data Portal (see docs/demo-portal.md)."""
