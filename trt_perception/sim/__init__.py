"""A light, ROS-free circuit simulator for CI and demos (Gazebo stays the real simulator).

``circuits`` (closed centre lines + width, reference laps), ``render`` (forward camera view),
``vehicle`` (kinematic car driven by v, w), ``expert`` (pure pursuit, ground-truth commands) and
``world`` (all stepped together; ``drive`` runs a brain in closed loop).
"""
