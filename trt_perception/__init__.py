"""TensorRT perception for ROS 2: ROS-free cores (``inference``, ``vision``, ``stages``, ``metrics``,
``evaluation``, ``pipeline``) under thin ROS 2 nodes (``nodes``, with shared glue in ``ros``)."""

__version__ = "0.1.0"
