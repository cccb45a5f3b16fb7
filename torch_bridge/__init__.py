"""torch_bridge: fixed-point quantization-aware training and export to amaranth-nn specs."""
