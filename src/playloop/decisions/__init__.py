"""Human decision points and external callbacks (the engine's side is engine/decisions.py)."""
