"""ROS-free evaluation: run models through the streaming engine over sequences, score, report.

    from ftpfusion_ros.evaluation import EvalConfig, evaluate_models, write_outputs
    from ftpfusion_ros.data.sequences import find_sequences
    res = evaluate_models(find_sequences("data/m3svd"), EvalConfig(models=["average", "max_luminance"]))
    write_outputs(res, "eval_out")
"""
from .report import to_json_dict, write_outputs
from .runner import EvalConfig, EvalResults, SequenceResult, evaluate_models, evaluate_predictions
from .scoring import SequenceScorer

__all__ = ["EvalConfig", "EvalResults", "SequenceResult", "SequenceScorer", "evaluate_models",
           "evaluate_predictions", "to_json_dict", "write_outputs"]
