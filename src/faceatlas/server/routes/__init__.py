"""The service's routers, one module per area: images (analyze, verify, identify), people, system."""
