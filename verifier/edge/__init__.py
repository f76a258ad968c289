"""Edge verifiers: the edge app that authenticates from a cache of the cloud's registry, its store and upstream client, and the cloud-side routes edges sync from (docs/tokens.md section 9)."""
