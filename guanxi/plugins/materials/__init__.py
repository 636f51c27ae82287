"""Material library with radar links (素材库, 客户雷达)."""
