"""ROS-free readers and writers every layer shares: rosbag2 files, ``sensor_msgs/Image`` <-> numpy,
header stamps <-> nanoseconds, atomic file writes."""
