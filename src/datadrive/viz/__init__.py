"""Pictures of scenarios (matplotlib, the ``[viz]`` extra)."""

from datadrive.viz.bev import TYPE_COLOURS, render_bev

__all__ = ["TYPE_COLOURS", "render_bev"]
