"""Replay a rosbag through the fusion nodes (simulated time from the bag's /clock).

    ros2 launch ftpfusion_ros replay.launch.py bag:=/data/run1 ir_topic:=/flir/image_raw \
        vis_topic:=/camera/color/image_raw

Arguments: bag (required), rate, loop, start_delay, and the fusion launch's model, checkpoint, device,
params_file, ir_topic, vis_topic, composed, autostart, rviz. use_sim_time is on: stamps and the nodes' clocks come
from the bag. (Needs `ros2 bag` from a ROS install; `ftpfusion bag` fuses a bag offline without ROS.)
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, TimerAction
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = "ftpfusion_ros"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    args = [
        DeclareLaunchArgument("bag", description="rosbag2 directory or file to play"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback rate"),
        DeclareLaunchArgument("loop", default_value="false", description="loop the bag"),
        DeclareLaunchArgument("start_delay", default_value="3.0",
                              description="s to wait before playing (model loading)"),
        DeclareLaunchArgument("ir_topic", default_value="ir/image_raw", description="IR image topic in the bag"),
        DeclareLaunchArgument("vis_topic", default_value="visible/image_raw",
                              description="visible image topic in the bag"),
        DeclareLaunchArgument("model", default_value="auto", description="fusion model"),
        DeclareLaunchArgument("checkpoint", default_value="", description="checkpoint .pt ('' = packaged)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "fusion.yaml"),
                              description="fusion node parameters"),
        DeclareLaunchArgument("composed", default_value="true", description="sync + fusion in one process"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the managed nodes at start"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz"),
    ]
    fusion = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "fusion.launch.py")),
        launch_arguments={
            "model": LaunchConfiguration("model"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "device": LaunchConfiguration("device"),
            "params_file": LaunchConfiguration("params_file"),
            "ir_topic": LaunchConfiguration("ir_topic"),
            "vis_topic": LaunchConfiguration("vis_topic"),
            "composed": LaunchConfiguration("composed"),
            "autostart": LaunchConfiguration("autostart"),
            "rviz": LaunchConfiguration("rviz"),
            "use_sim_time": "true",
        }.items(),
    )
    play = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate")],
        output="screen",
        condition=UnlessCondition(LaunchConfiguration("loop")),
    )
    play_loop = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate"),
             "--loop"],
        output="screen",
        condition=IfCondition(LaunchConfiguration("loop")),
    )
    return LaunchDescription(args + [
        fusion,
        TimerAction(period=LaunchConfiguration("start_delay"), actions=[play, play_loop]),
    ])
