"""Neural fusion heads on sequence features: the shared trainer and one step module per head."""
