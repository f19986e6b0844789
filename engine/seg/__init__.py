"""Classical segmentation tools: the DRLSE level-set baseline and mask <-> contour conversion."""

from engine.seg.contours import (
    Contour,
    contours_to_mask,
    export_contours_csv,
    export_contours_json,
    mask_to_contours,
    net_area,
    read_contours_json,
    region_count,
)
from engine.seg.drlse import DRLSEParams, DRLSEResult, drlse_segment, edge_indicator

__all__ = [
    "Contour",
    "DRLSEParams",
    "DRLSEResult",
    "contours_to_mask",
    "drlse_segment",
    "edge_indicator",
    "export_contours_csv",
    "export_contours_json",
    "mask_to_contours",
    "net_area",
    "read_contours_json",
    "region_count",
]
