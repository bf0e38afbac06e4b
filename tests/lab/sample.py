"""TOML pieces the lab's unit tests share."""

ROUTERS = """
[[router]]
name = "A"
router_id = "10.0.0.1"
[[router]]
name = "B"
router_id = "10.0.0.2"
"""
