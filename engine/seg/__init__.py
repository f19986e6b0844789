"""Classical segmentation tools: the DRLSE level-set baseline and mask <-> contour conversion."""

from engine.seg.drlse import DRLSEParams, DRLSEResult, drlse_segment, edge_indicator

__all__ = ["DRLSEParams", "DRLSEResult", "drlse_segment", "edge_indicator"]
