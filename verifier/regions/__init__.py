"""Regions: a tenant's device-facing endpoints per region and the board configuration they give (docs/regions.md)."""
