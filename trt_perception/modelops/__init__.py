"""Model operations: precision recipes (FP16/INT8 copies) that work on model files, not on engines."""
