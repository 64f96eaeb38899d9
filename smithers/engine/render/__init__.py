"""Rendering: the tree a render function returned, walked against the persisted state."""

from .tree import Rendered, render, walk_node

__all__ = ["Rendered", "render", "walk_node"]
