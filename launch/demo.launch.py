"""Demo: simulated IR + visible cameras -> fusion -> RViz showing IR | visible | fused.

    ros2 launch ftpfusion_ros demo.launch.py
    ros2 launch ftpfusion_ros demo.launch.py width:=640 height:=480 rate:=30 rviz:=false

Arguments: width, height, rate, ir_encoding, sim_params_file, rviz, and the fusion launch's model,
checkpoint, device, params_file, composed, autostart.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "ftpfusion_ros"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    args = [
        DeclareLaunchArgument("width", default_value="320", description="simulated image width"),
        DeclareLaunchArgument("height", default_value="240", description="simulated image height"),
        DeclareLaunchArgument("rate", default_value="10.0", description="camera rate (Hz)"),
        DeclareLaunchArgument("ir_encoding", default_value="mono8", description="mono8 | mono16"),
        DeclareLaunchArgument("sim_params_file", default_value=os.path.join(share, "config", "camera_sim.yaml"),
                              description="camera simulator parameters"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz"),
        DeclareLaunchArgument("model", default_value="auto", description="fusion model"),
        DeclareLaunchArgument("checkpoint", default_value="", description="checkpoint .pt ('' = packaged)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "fusion.yaml"),
                              description="fusion node parameters"),
        DeclareLaunchArgument("composed", default_value="true", description="sync + fusion in one process"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the managed nodes at start"),
    ]
    camera = Node(
        package=PACKAGE, executable="ftpfusion_camera_sim", name="ftpfusion_camera_sim", output="screen",
        parameters=[
            LaunchConfiguration("sim_params_file"),
            {
                "width": ParameterValue(LaunchConfiguration("width"), value_type=int),
                "height": ParameterValue(LaunchConfiguration("height"), value_type=int),
                "rate": ParameterValue(LaunchConfiguration("rate"), value_type=float),
                "ir_encoding": LaunchConfiguration("ir_encoding"),
            },
        ],
    )
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "fusion.launch.py")),
        launch_arguments={
            "model": LaunchConfiguration("model"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "device": LaunchConfiguration("device"),
            "params_file": LaunchConfiguration("params_file"),
            "composed": LaunchConfiguration("composed"),
            "autostart": LaunchConfiguration("autostart"),
            "rviz": LaunchConfiguration("rviz"),
        }.items(),
    )
    return LaunchDescription(args + [fusion, camera])
