"""Pictures of scenarios (matplotlib, the ``[viz]`` extra)."""

from datadrive.viz.bev import TYPE_COLOURS, render_bev
from datadrive.viz.highlight import animate_highlight, render_highlight

__all__ = ["TYPE_COLOURS", "animate_highlight", "render_bev", "render_highlight"]
