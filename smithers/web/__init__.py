"""What the three HTTP apps share (the only part of the core that imports Starlette)."""
