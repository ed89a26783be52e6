"""ftpfusion_ros: infrared/visible video fusion with a ROS-free core and thin ROS 2 nodes."""

__version__ = "0.1.0"
