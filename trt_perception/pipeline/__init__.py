"""Stages chained in one process (camera -> detector -> plate reader -> segmenter), no ROS types."""
