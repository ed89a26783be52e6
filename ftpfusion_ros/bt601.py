"""The BT.601 luma weights: the project's one colour convention (full range), in one place.

Torch code converts with :mod:`ftpfusion_ros.nn.colour`, numpy code (metrics, diagnostics) with
:func:`ftpfusion_ros.metrics.common.bgr_to_y`; both take their weights from here. No imports, so the
numpy side does not pull in torch.
"""

#: Y = KR R + KG G + KB B
KR, KG, KB = 0.299, 0.587, 0.114
