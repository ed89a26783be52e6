"""Infrared/visible fusion: sync + fusion nodes (composed in one process by default) and optional RViz.

    ros2 launch ftpfusion_ros fusion.launch.py ir_topic:=/flir/image_raw vis_topic:=/camera/color/image_raw
    ros2 launch ftpfusion_ros fusion.launch.py model:=ftpfusion checkpoint:=/path/ftpfusion.pt device:=cuda

Arguments: model, checkpoint, device, params_file, ir_topic, vis_topic, ir_info_topic, vis_info_topic,
composed, autostart, use_sim_time, rviz. The nodes are managed (lifecycle) nodes: with autostart:=true (the
default) they configure and activate themselves at start; autostart:=false leaves them unconfigured for a
lifecycle manager (`ros2 lifecycle set /ftpfusion_fusion_node configure`, then `activate`). FASTDDS_DEFAULT_PROFILES_FILE is pointed at the package's large-image
profile unless it is already set.
"""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "ftpfusion_ros"
FASTDDS_PROFILE_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"


def _fastdds_profile(context, profile):
    # Only when unset or empty (an empty value breaks Fast DDS): a user's own profile wins.
    if os.environ.get(FASTDDS_PROFILE_VAR):
        return []
    return [SetEnvironmentVariable(FASTDDS_PROFILE_VAR, profile)]


def _rviz(context, config):
    """RViz when asked for and installed. Without rviz2, launch would fail while starting it and leave the
    fusion process it had already started running without a parent: say so and go on without RViz."""
    if not IfCondition(LaunchConfiguration("rviz")).evaluate(context):
        return []
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="rviz:=true but rviz2 is not installed: fusing without RViz")]
    return [Node(package="rviz2", executable="rviz2", name="rviz2",
                 arguments=["-d", os.path.join(config, "fusion.rviz")],
                 parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}])]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, "config")
    args = [
        DeclareLaunchArgument("model", default_value="auto",
                              description="fusion model: auto (ftpfusion if its checkpoint ships, else "
                                          "a classical fallback), ftpfusion, rpfnet, f3net, isfm or a classical one"),
        DeclareLaunchArgument("checkpoint", default_value="", description="checkpoint .pt ('' = packaged)"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda | cuda:N"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(config, "fusion.yaml"),
                              description="node parameters (YAML keyed by node name)"),
        DeclareLaunchArgument("ir_topic", default_value="ir/image_raw", description="IR image topic"),
        DeclareLaunchArgument("vis_topic", default_value="visible/image_raw", description="visible image topic"),
        DeclareLaunchArgument("ir_info_topic", default_value="ir/camera_info", description="IR camera_info"),
        DeclareLaunchArgument("vis_info_topic", default_value="visible/camera_info",
                              description="visible camera_info"),
        DeclareLaunchArgument("composed", default_value="true",
                              description="true: sync + fusion in one process; false: two nodes over FramePair"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate the managed nodes at start; false: leave them "
                                          "unconfigured for a lifecycle manager"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start RViz with IR | visible | fused (skipped if rviz2 is not installed)"),
    ]
    params = [
        LaunchConfiguration("params_file"),
        {
            "model": LaunchConfiguration("model"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "device": LaunchConfiguration("device"),
            "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
            "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        },
    ]
    remappings = [
        ("ir/image_raw", LaunchConfiguration("ir_topic")),
        ("visible/image_raw", LaunchConfiguration("vis_topic")),
        ("ir/camera_info", LaunchConfiguration("ir_info_topic")),
        ("visible/camera_info", LaunchConfiguration("vis_info_topic")),
    ]
    composed = LaunchConfiguration("composed")
    nodes = [
        # One process, two nodes (ftpfusion_sync_node + ftpfusion_fusion_node): no `name=` here, it would
        # rename both.
        Node(package=PACKAGE, executable="ftpfusion_composed", output="screen", parameters=params,
             remappings=remappings, condition=IfCondition(composed)),
        Node(package=PACKAGE, executable="ftpfusion_sync_node", name="ftpfusion_sync_node", output="screen",
             parameters=params, remappings=remappings, condition=UnlessCondition(composed)),
        Node(package=PACKAGE, executable="ftpfusion_fusion_node", name="ftpfusion_fusion_node", output="screen",
             parameters=params, condition=UnlessCondition(composed)),
        OpaqueFunction(function=_rviz, args=[config]),
    ]
    profile = os.path.join(config, "fastdds_large_images.xml")
    return LaunchDescription(args + [OpaqueFunction(function=_fastdds_profile, args=[profile])] + nodes)
