"""Host tools: the `janua` command line."""
