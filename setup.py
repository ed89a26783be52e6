"""Python packaging for ftpfusion_ros.

`pip install .` gives the ROS-free library and the `ftpfusion` CLI. The ROS package (messages included)
is built by colcon through CMakeLists.txt; both share this package's sources.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "ftpfusion_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-time infrared/visible video fusion for ROS 2 (FTPFusion and baselines)",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["**/*.yaml", "checkpoints/*.pt", "checkpoints/*.yaml"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/msg", glob("msg/*.msg")),
    ],
    install_requires=[
        "numpy>=1.24",
        "torch>=2.2",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "tqdm>=4.60",
        "scikit-image>=0.22",
        "torchmetrics>=1.3",
        "matplotlib>=3.7",
        "rosbags>=0.10",
        "rosbags-image[opencv-headless]>=0.10",
        "tensorboard>=2.14",
    ],
    extras_require={
        "ros": [
            "ros-rclpy",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-diagnostic-msgs",
            "ros-builtin-interfaces",
            "ros-rmw-fastrtps-cpp",
        ],
    },
    entry_points={
        "console_scripts": [
            "ftpfusion = ftpfusion_ros.cli.main:main",
            # ROS 2 nodes (need the ros extra and the colcon-built interfaces; `ros2 run` uses the same
            # names, installed under lib/ftpfusion_ros by CMakeLists.txt)
            "ftpfusion_sync_node = ftpfusion_ros.ros.sync_node:main",
            "ftpfusion_fusion_node = ftpfusion_ros.ros.fusion_node:main",
            "ftpfusion_camera_sim = ftpfusion_ros.ros.camera_sim:main",
            "ftpfusion_composed = ftpfusion_ros.ros.composed:main",
        ],
    },
)
