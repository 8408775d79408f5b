"""2-D rigid frame transforms (SE(2)) and angle helpers, vectorised over any leading shape.

A pose ``(x_m, y_m, heading_rad)`` in a world frame defines the frame of an
object: origin at the object, x along its heading. Names follow the
``target_SE2_source`` convention: :func:`to_frame` applies ``obj_SE2_world``
to world points, :func:`from_frame` applies ``world_SE2_obj``.

Notation:
    ...: any leading shape, broadcast between points and poses.
"""

from __future__ import annotations

import numpy as np

from datadrive.core.typing import NDArrayFloat

__all__ = ["from_frame", "rotate", "to_frame", "wrap_angle"]


def wrap_angle(angle_rad: NDArrayFloat) -> NDArrayFloat:
    """Angles wrapped into ``[-pi, pi)``."""
    out: NDArrayFloat = (np.asarray(angle_rad) + np.pi) % (2.0 * np.pi) - np.pi
    return out


def rotate(vectors: NDArrayFloat, angle_rad: NDArrayFloat) -> NDArrayFloat:
    """``(..., 2)`` vectors rotated counter-clockwise by ``(...)`` angles."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x - s * y, s * x + c * y], axis=-1)


def to_frame(points_xy_m: NDArrayFloat, origin_xy_m: NDArrayFloat, heading_rad: NDArrayFloat) -> NDArrayFloat:
    """World points in the frame of a pose (``obj_SE2_world``).

    Args:
        points_xy_m: ``(..., 2)`` points in the world frame.
        origin_xy_m: ``(..., 2)`` the pose's position, broadcast against the points.
        heading_rad: ``(...)`` the pose's heading.

    Returns:
        ``(..., 2)`` the points with the pose at the origin, its heading along +x.
    """
    return rotate(points_xy_m - origin_xy_m, -np.asarray(heading_rad))


def from_frame(
    points_xy_m: NDArrayFloat, origin_xy_m: NDArrayFloat, heading_rad: NDArrayFloat
) -> NDArrayFloat:
    """Points given in a pose's frame, back in the world frame (``world_SE2_obj``).

    The inverse of :func:`to_frame`.
    """
    return rotate(points_xy_m, np.asarray(heading_rad)) + origin_xy_m
